"""Two processes x 4 CPU devices (launch/local.sh, jax.distributed over loopback) == one process x 8 devices."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--config=configs/byol.py", "--config.data.source=synthetic", "--config.data.synthetic_size=16",
        "--config.augment.size=16", "--config.train.batch_size=16", "--config.method.proj_hidden_dims=(32,)",
        "--config.method.proj_dim=16", "--config.method.pred_hidden_dims=(32,)", "--config.train.num_steps=3",
        "--config.train.log_every=1", "--config.eval.knn_at_init=False", "--config.eval.batch_size=64"]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _history(workdir):
  saved = json.loads((workdir / "results.json").read_text())
  return [h["loss"] for h in saved["history"]], saved["results"]


def test_two_processes_follow_the_one_process_trajectory(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PORT=str(_free_port()), DEVICES_PER_PROCESS="4")
  env.pop("XLA_FLAGS", None)
  two = subprocess.run(["bash", "launch/local.sh", "2", f"--workdir={tmp_path / 'two'}", *ARGS], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=900)
  assert two.returncode == 0, two.stderr[-3000:]
  env_one = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
  one = subprocess.run([sys.executable, "-m", "jaxssl.main", f"--workdir={tmp_path / 'one'}", *ARGS], cwd=ROOT,
                       env=env_one, capture_output=True, text=True, timeout=900)
  assert one.returncode == 0, one.stderr[-3000:]
  losses_two, results_two = _history(tmp_path / "two")
  losses_one, results_one = _history(tmp_path / "one")
  assert len(losses_one) == 3
  np.testing.assert_allclose(losses_two, losses_one, rtol=1e-5, atol=1e-6)
  assert abs(results_two["knn_accuracy"] - results_one["knn_accuracy"]) < 1e-6
  # One checkpoint, written jointly, at the end.
  assert os.listdir(tmp_path / "two" / "checkpoints") == ["3"]
