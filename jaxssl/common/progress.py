"""A dependency-free progress line, redrawn in place on a terminal:

    [#####...............] 10/40 00:25<01:27 loss=12.45 lr=0.00045 cls_loss=8.117 patch_loss=4.334 img/s=88.46

the step, the time since the segment started and the time left (as tqdm shows them), the metrics that fit in
``width`` columns (the loss, the learning rate, the loss's parts, the online probe, then the others in the order
the method logs them) and the speed. Every metric goes to metrics.jsonl and the trackers; the console keeps to one line.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

SHORT = {"images_per_s": "img/s", "tflops_per_device": "TFLOP/s"}
FIRST = ("loss", "lr", "probe_acc")
# Speed figures beside img/s: in metrics.jsonl, not on the line.
TIMINGS = ("img/s", "step_s", "data_s", "compute_s", "TFLOP/s", "mfu")


def clock_text(seconds: float) -> str:
  """``mm:ss``, or ``h:mm:ss`` from an hour (tqdm's format)."""
  seconds = max(int(round(seconds)), 0)
  hours, rest = divmod(seconds, 3600)
  return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
  """Prints the line when asked (the loop asks at jaxssl.engine.cadence's log steps, with the metrics and
  ``jaxssl.engine.speed.StepTimer``'s figures). Silent when not ``enabled`` (every process but the first of a
  multi-process run, whose line would repeat the first's). Time counts from construction (the segment's start,
  compilation included); the time left is the remaining steps at the mean step time since the first line (at
  the first line, its ``step_s``)."""

  def __init__(self, total: int, stream=None, enabled: bool = True, first_step: int = 0, width: int = 120,
               clock: Callable[[], float] = time.perf_counter):
    self.total, self.enabled, self.width, self.clock = total, enabled, width, clock
    self.stream = stream or sys.stderr
    self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
    self.start = clock()
    self.mark: tuple[int, float] | None = None        # (step, time) of the first line
    self.shown: list[str] | None = None               # the metrics on the line, chosen at the first line

  def log(self, step: int, metrics: dict[str, float]) -> None:
    """Prints the line (``images_per_s`` as img/s)."""
    if not self.enabled:
      return
    metrics = {SHORT.get(k, k): v for k, v in metrics.items()}
    now = self.clock()
    if self.mark is None or step <= self.mark[0]:
      per_step = metrics.get("step_s", 0.0)
      self.mark = (step, now)
    else:
      per_step = (now - self.mark[1]) / (step - self.mark[0])
    left = clock_text(per_step * (self.total - step)) if per_step > 0 else "?"
    bar_width = 20
    filled = int(bar_width * step / self.total)
    head = f"[{'#' * filled}{'.' * (bar_width - filled)}] {step}/{self.total} {clock_text(now - self.start)}<{left}"
    tail = f" img/s={metrics['img/s']:.4g}" if "img/s" in metrics else ""
    if self.shown is None:
      self.shown = self._fit(metrics, len(head) + len(tail))
    shown = [f" {k}={metrics[k]:.4g}" for k in self.shown if k in metrics]
    while shown and len(head) + len("".join(shown)) + len(tail) > self.width:   # a value grew: drop from the end
      shown.pop()
    line = head + "".join(shown) + tail
    self.stream.write(("\r" + line) if self.tty else (line + "\n"))
    self.stream.flush()

  def _fit(self, metrics: dict[str, float], used: int) -> list[str]:
    """The metric names the line has room for: the loss and learning rate, the loss's parts (``*_loss``), the
    online probe's accuracy, then the others as logged, each where its value as now printed (and one more
    character) fits; chosen once, so the columns stay put."""
    rest = [k for k in metrics if k not in FIRST and k not in TIMINGS]
    parts = [k for k in rest if k.endswith("_loss") and not k.startswith("probe")]
    names = [k for k in FIRST[:2] if k in metrics] + parts + [k for k in FIRST[2:] if k in metrics]
    names += [k for k in rest if k not in parts]
    chosen = []
    for name in names:
      cost = len(f" {name}={metrics[name]:.4g}") + 1
      if used + cost <= self.width:
        chosen.append(name)
        used += cost
    return chosen

  def close(self) -> None:
    if self.tty and self.enabled:
      self.stream.write("\n")
      self.stream.flush()
