"""Metrics on disk: ``WORKDIR/metrics.jsonl`` (one JSON object per line) and TensorBoard event files in
``WORKDIR/tensorboard``, written by process 0 only; plus the representation-collapse warning.
"""

from __future__ import annotations

import json
import math
import sys

# Representation std (of L2-normalised features, times sqrt(D)) is about 1 for spread-out features and tends
# to 0 under complete collapse (Chen and He 2021, SimSiam, Fig. 2). Below this the run is warned once.
COLLAPSE_STD = 0.1


def _record(line: str) -> dict | None:
  """The JSON object on one line of metrics.jsonl, or None if the line is not one."""
  try:
    record = json.loads(line)
  except ValueError:
    return None
  return record if isinstance(record, dict) else None


class MetricsWriter:
  """Appends step metrics and evaluations to ``workdir/metrics.jsonl`` (local or a URL, ``jaxssl.common.workdir``); on
  resume, drops the lines of steps after the checkpoint. ``history()`` reads the training lines back."""

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int = 0):
    from jaxssl.common.workdir import LineLog, Mirror, resolve

    self.enabled = enabled
    self.path = resolve(workdir) / "metrics.jsonl"
    self._warned = False
    self._tensorboard = self._mirror = self._log = None
    if not enabled:
      return
    self._log = LineLog(self.path)
    torn = [line for line in self._log.lines if _record(line) is None]
    if torn:                                 # a crash during a write leaves a partial last line
      print(f"warning: {self.path}: dropped {len(torn)} line(s) that are not JSON records (a write cut short): "
            f"{torn[-1].strip()[:60]!r}", file=sys.stderr, flush=True)
    self._log.keep(lambda line: (record := _record(line)) is not None and record.get("step", 0) <= resume_step)
    try:
      from tensorboardX import SummaryWriter
    except ImportError:                      # TensorBoard files are optional; metrics.jsonl is always written
      return
    self._mirror = Mirror(resolve(workdir) / "tensorboard")
    self._tensorboard = SummaryWriter(self._mirror.path, purge_step=resume_step + 1 if resume_step else None)

  def history(self) -> list[dict]:
    """The training records written so far (this run's and, after a resume, the earlier segments'), each
    ``{"step": N, metric: value, ...}``; empty where this process does not write."""
    if self._log is None:
      return []
    records = [r for r in map(_record, self._log.lines) if r is not None]
    return [{k: v for k, v in r.items() if k != "kind"} for r in records if r.get("kind") == "train"]

  def flush(self) -> None:
    """Makes everything written so far durable (a checkpoint is about to record the step)."""
    if self._log is not None:
      self._log.flush()
    if self._tensorboard is not None:
      self._tensorboard.flush()
      self._mirror.push()

  def write(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
    if not self.enabled:
      return
    self._log.append(json.dumps({"step": step, "kind": prefix, **metrics}))
    if self._tensorboard is not None:
      for name, value in metrics.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
          self._tensorboard.add_scalar(f"{prefix}/{name}", value, step)
      self._tensorboard.flush()              # to the local file (the mirror's, for a URL: pushed at flush())
    std = metrics.get("rep_std")
    if std is not None and std < COLLAPSE_STD and not self._warned:
      self._warned = True
      print(f"warning: step {step}: representation std {std:.3g} < {COLLAPSE_STD} (1 = spread out, 0 = "
            "collapsed); the representations may be collapsing", file=sys.stderr, flush=True)

  def close(self) -> None:
    if self._log is not None:
      self._log.flush()
    if self._tensorboard is not None:
      self._tensorboard.close()
      self._mirror.close()
