"""XLA:CPU settings jaxssl's entry points apply before JAX starts its backend.

XLA:CPU (jax 0.10) hands single convolutions to YNNPACK by default. For the ResNets here Eigen's convolution
is faster on the CPU, forward and in jaxssl.models.conv's backward pass (small ResNet at batch 512 on a 2-core
x86_64 CPU: 0.52 s against 0.68 s per forward+backward; benchmarks/speed/throughput.py). The flag only concerns the
CPU backend. XLA reads XLA_FLAGS once, when the first backend starts, so this must run before any computation;
a user who sets the option in XLA_FLAGS keeps theirs.

Where JAX will start a GPU or TPU backend (an accelerator plugin is installed and JAX_PLATFORMS does not ask
for the CPU), XLA_FLAGS is left alone: the option would not matter there, and an XLA of another version that
no longer knows this experimental option would refuse to start.
"""

import importlib.util
import os
import pkgutil

_OPTION = "--xla_cpu_experimental_ynn_fusion_type"
CPU_FLAGS = f"{_OPTION}=-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"


def cpu_backend_expected() -> bool:
  """Whether JAX will run on the CPU: JAX_PLATFORMS names the CPU first, or, where it is unset, neither a
  GPU/TPU plugin (the ``jax_plugins`` namespace, e.g. jax-cuda13-plugin) nor libtpu is installed."""
  platforms = os.environ.get("JAX_PLATFORMS", "").strip()
  if platforms:
    return platforms.split(",")[0].strip() == "cpu"
  plugins = importlib.util.find_spec("jax_plugins")
  if plugins is not None and any(pkgutil.iter_modules(plugins.submodule_search_locations)):
    return False
  return importlib.util.find_spec("libtpu") is None


def with_eigen_convolutions(flags: str) -> str:
  """``flags`` (an XLA_FLAGS value) with CPU_FLAGS added, unless the option is already there or JAX will not
  run on the CPU (``cpu_backend_expected``)."""
  if _OPTION in flags or not cpu_backend_expected():
    return flags
  return f"{flags} {CPU_FLAGS}".strip()


def use_eigen_convolutions_on_cpu() -> None:
  """Sets XLA_FLAGS of this process to ``with_eigen_convolutions`` of its current value."""
  os.environ["XLA_FLAGS"] = with_eigen_convolutions(os.environ.get("XLA_FLAGS", ""))
