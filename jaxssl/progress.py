"""A dependency-free progress line: step, loss and images/s, redrawn in place on a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
  """Prints ``[step/total] loss=... img/s=...`` when asked (the loop asks at jaxssl.cadence's log steps)."""

  def __init__(self, total: int, global_batch: int, stream=None, start: int = 0):
    self.total, self.global_batch = total, global_batch
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self._last_step, self._last_time = start, time.perf_counter()

  def log(self, step: int, metrics: dict[str, float]) -> float:
    """Prints the line; returns the images/s since the previous one."""
    now = time.perf_counter()
    rate = (step - self._last_step) * self.global_batch / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    bar_width = 20
    filled = int(bar_width * step / self.total)
    line = f"[{'#' * filled}{'.' * (bar_width - filled)}] {step}/{self.total} {shown} img/s={rate:.1f}"
    self.stream.write(("\r" + line) if self.tty else (line + "\n"))
    self.stream.flush()
    return rate

  def close(self) -> None:
    if self.tty:
      self.stream.write("\n")
      self.stream.flush()
