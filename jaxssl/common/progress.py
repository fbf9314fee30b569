"""A dependency-free progress line: step, loss, speed, redrawn in place on a terminal."""

from __future__ import annotations

import sys

SHORT = {"images_per_s": "img/s", "tflops_per_device": "TFLOP/s"}


class Progress:
  """Prints ``[step/total] loss=... img/s=... step_s=...`` when asked (the loop asks at jaxssl.engine.cadence's log
  steps, with the metrics and ``jaxssl.engine.speed.StepTimer``'s figures). Silent when not ``enabled`` (every
  process but the first of a multi-process run, whose line would repeat the first's)."""

  def __init__(self, total: int, stream=None, enabled: bool = True):
    self.total, self.enabled = total, enabled
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

  def log(self, step: int, metrics: dict[str, float]) -> None:
    """Prints the line (images_per_s as img/s)."""
    if not self.enabled:
      return
    shown = " ".join(f"{SHORT.get(k, k)}={v:.4g}" for k, v in metrics.items())
    bar_width = 20
    filled = int(bar_width * step / self.total)
    line = f"[{'#' * filled}{'.' * (bar_width - filled)}] {step}/{self.total} {shown}"
    self.stream.write(("\r" + line) if self.tty else (line + "\n"))
    self.stream.flush()

  def close(self) -> None:
    if self.tty and self.enabled:
      self.stream.write("\n")
      self.stream.flush()
