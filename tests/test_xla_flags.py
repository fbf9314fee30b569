"""jaxssl.common.xla_flags: the CPU-only XLA option is added where JAX will run on the CPU, and nowhere else."""

import pytest

from jaxssl.common import xla_flags


@pytest.fixture
def no_plugins(monkeypatch, tmp_path):
  """No JAX_PLATFORMS, and a folder first on sys.path for a fake plugin (CI machines have no real one)."""
  monkeypatch.delenv("JAX_PLATFORMS", raising=False)
  monkeypatch.syspath_prepend(tmp_path)                 # where the GPU test below puts a fake plugin
  return tmp_path


def test_adds_the_option_on_a_cpu_only_machine(no_plugins):
  assert xla_flags.cpu_backend_expected()
  assert xla_flags.with_eigen_convolutions("--xla_foo=1") == f"--xla_foo=1 {xla_flags.CPU_FLAGS}"


def test_keeps_a_users_own_value(no_plugins):
  mine = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"
  assert xla_flags.with_eigen_convolutions(mine) == mine


def test_leaves_flags_alone_where_a_gpu_plugin_is_installed(no_plugins, monkeypatch):
  # A GPU plugin lives in the jax_plugins namespace package (e.g. jax_plugins/xla_cuda13 of jax-cuda13-plugin).
  (no_plugins / "jax_plugins" / "xla_cuda13").mkdir(parents=True)
  (no_plugins / "jax_plugins" / "xla_cuda13" / "__init__.py").write_text("")
  assert not xla_flags.cpu_backend_expected()
  assert xla_flags.with_eigen_convolutions("--xla_foo=1") == "--xla_foo=1"
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")            # the user asks for the CPU all the same
  assert xla_flags.with_eigen_convolutions("") == xla_flags.CPU_FLAGS


@pytest.mark.parametrize("platforms, expected", [("cpu", True), ("cuda", False), ("tpu,cpu", False),
                                                 ("cpu,cuda", True)])
def test_jax_platforms_decides(no_plugins, monkeypatch, platforms, expected):
  monkeypatch.setenv("JAX_PLATFORMS", platforms)
  assert xla_flags.cpu_backend_expected() == expected
