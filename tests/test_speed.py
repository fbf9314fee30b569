"""Speed in the log: the peak table, XLA's FLOP count of a compiled step, and the step timer's arithmetic."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxssl.engine import parallel, speed
from helpers import mesh


@pytest.mark.parametrize("kind, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0), ("NVIDIA H100 PCIe", 756.0), ("NVIDIA H200", 989.0),
    ("NVIDIA A100-SXM4-80GB", 312.0), ("TPU v4", 275.0), ("TPU v5 lite", 197.0), ("TPU v5", 459.0),
    ("TPU v5p", 459.0), ("TPU v6 lite", 918.0), ("cpu", None), ("NVIDIA GeForce RTX 3090", None)])
def test_peak_of_each_device_kind(kind, peak):
  assert speed.peak_tflops(kind) == peak


@pytest.mark.parametrize("devices", [1, 8])
def test_flops_per_device_of_a_data_parallel_matmul(devices):
  """[B, K] @ [K, N] over B split on the devices: 2 B K N / devices multiply-adds per device, within the few
  FLOPs XLA counts for the elementwise rest."""
  m = mesh(devices)
  b, k, n = 256, 128, 64
  step = parallel.shard_step(lambda w, x: (w, {"y": jnp.sum(x @ w)}), m)
  w = parallel.replicate(jnp.ones((k, n)), m)
  x = jax.device_put(jnp.ones((b, k)), NamedSharding(m, P(parallel.AXIS)))
  flops = speed.flops_per_device(step.lower(w, x).compile())
  expected = 2 * b * k * n / devices
  assert expected <= flops <= 1.05 * expected


def test_flops_per_device_without_a_cost_model():
  class NoModel:
    def cost_analysis(self):
      raise NotImplementedError

  assert speed.flops_per_device(NoModel()) is None
  assert speed.flops_per_device(type("Empty", (), {"cost_analysis": lambda self: [{}]})()) is None


def test_step_timer_splits_data_wait_from_compute_and_gives_mfu():
  now = [100.0]
  timer = speed.StepTimer(global_batch=64, step=10, flops=2e12, peak=100.0, clock=lambda: now[0])
  for _ in range(4):                  # 4 steps of 0.5 s, 0.1 s of each waiting for data
    timer.data_wait(0.1)
    now[0] += 0.5
  out = timer.interval(14)
  np.testing.assert_allclose([out["step_s"], out["data_s"], out["compute_s"]], [0.5, 0.1, 0.4])
  np.testing.assert_allclose(out["images_per_s"], 128.0)
  np.testing.assert_allclose(out["tflops_per_device"], 4.0)
  np.testing.assert_allclose(out["mfu"], 0.04)
  # An evaluation between log steps is not training time: restart() leaves it out.
  now[0] += 30.0
  timer.restart(14)
  now[0] += 1.0
  assert timer.interval(16)["step_s"] == pytest.approx(0.5)


def test_step_timer_without_flops_or_peak():
  timer = speed.StepTimer(global_batch=8, step=0, flops=1e9, peak=None)
  out = timer.interval(1)
  assert "tflops_per_device" in out and "mfu" not in out
  assert set(speed.StepTimer(8, 0).interval(1)) == {"images_per_s", "step_s", "data_s", "compute_s"}
  assert "no MFU: the peak of 'cpu' is unknown" in speed.describe(1e9, None, "cpu", 8, 1)
  assert "MFU against 989 TFLOP/s" in speed.describe(8e9, 989.0, "NVIDIA H200", 8, 1)
  assert "1 GFLOP per image" in speed.describe(1e9, None, "cpu", 8, 8)
