"""How fast a run goes and how well it uses the accelerator: images/s, seconds per step (waiting for data and
the rest apart), achieved TFLOP/s per device and the model FLOPs utilisation (MFU), as MaxText and big_vision
log them.

The FLOPs of one step come from XLA's cost analysis of the compiled per-device program (``flops_per_device``):
what the hardware executes, so with ``model.remat`` it counts the recomputed forward passes too (the hardware
FLOPs utilisation, HFU, which exceeds the MFU of Chowdhery et al. 2022 by about a third). The peak is the dense
bfloat16 peak of the device kind (``PEAK_BF16_TFLOPS``); on devices not in the table (the CPU) it is unknown and
no MFU is reported, rather than a guess.
"""

from __future__ import annotations

import time
from typing import Any

# Dense (no 2:4 sparsity) bfloat16 peak TFLOP/s of one device as JAX sees it (a GPU, a TPU chip; a v4 / v5p
# chip's two TensorCores are one megacore device). Vendors' data sheets. Keys are matched, in order, against
# ``jax.Device.device_kind`` (lower case), so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("h100 pcie", 756.0),
    ("h100", 989.0),           # SXM
    ("h200", 989.0),
    ("a100", 312.0),
    ("tpu v4", 275.0),
    ("tpu v5 lite", 197.0),    # v5e
    ("tpu v5e", 197.0),
    ("tpu v5p", 459.0),
    ("tpu v5", 459.0),         # v5p reports "TPU v5"
    ("tpu v6 lite", 918.0),    # v6e (Trillium)
    ("tpu v6e", 918.0),
)


def peak_tflops(device_kind: str) -> float | None:
  """The dense bfloat16 peak of one device of this kind (``jax.devices()[0].device_kind``), or None."""
  kind = device_kind.lower()
  for name, peak in PEAK_BF16_TFLOPS:
    if name in kind:
      return peak
  return None


def flops_per_device(compiled: Any) -> float | None:
  """FLOPs of one call of a compiled (``jax.jit(...).lower(...).compile()``) SPMD program on one device, from
  XLA's cost analysis; None where the backend gives none."""
  try:
    analysis = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 -- backends without a cost model raise various errors
    return None
  if isinstance(analysis, (list, tuple)):        # older jax: one dict per program
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


class StepTimer:
  """Measures the steps between two log points: the wall time per step, the share spent waiting for the data
  pipeline (``data_s``), images/s and, with the step's FLOPs, TFLOP/s per device and MFU.

  The loop calls ``data_wait(seconds)`` for each batch it takes, ``interval(step)`` at a log step, and
  ``restart(step)`` after time that is not training (an evaluation, a checkpoint), so that it is not counted.
  """

  def __init__(self, global_batch: int, step: int, flops: float | None = None, peak: float | None = None,
               clock=time.perf_counter):
    self.global_batch, self.flops, self.peak, self._clock = global_batch, flops, peak, clock
    self.restart(step)

  def restart(self, step: int) -> None:
    self._step, self._time, self._waited = step, self._clock(), 0.0

  def data_wait(self, seconds: float) -> None:
    self._waited += seconds

  def interval(self, step: int) -> dict[str, float]:
    """{"images_per_s", "step_s", "data_s", "compute_s"[, "tflops_per_device"[, "mfu"]]} per step since the
    last call or restart; compute_s is the rest of step_s: the device's work and the loop's own."""
    now = self._clock()
    steps = max(step - self._step, 1)
    step_s = max(now - self._time, 1e-9) / steps
    data_s = min(self._waited / steps, step_s)
    out = {"images_per_s": self.global_batch / step_s, "step_s": step_s, "data_s": data_s,
           "compute_s": step_s - data_s}
    if self.flops:
      out["tflops_per_device"] = self.flops / step_s / 1e12
      if self.peak:
        out["mfu"] = out["tflops_per_device"] / self.peak
    self.restart(step)
    return out


def describe(flops: float | None, peak: float | None, device_kind: str, global_batch: int, devices: int) -> str:
  """One line for the start of a run: the step's FLOPs per image and the peak MFU is measured against."""
  if flops is None:
    return "speed: XLA gives no FLOP count for this step on this backend; images/s and step times only"
  per_image = flops * devices / global_batch
  where = (f"MFU against {peak:g} TFLOP/s (bf16 dense peak of {device_kind})" if peak else
           f"no MFU: the peak of {device_kind!r} is unknown")
  return f"speed: {per_image / 1e9:.3g} GFLOP per image per step (XLA's count of the compiled step); {where}"
