"""Metrics on disk: ``WORKDIR/metrics.jsonl`` (one JSON object per line) and TensorBoard event files in
``WORKDIR/tensorboard``, written by process 0 only; plus the representation-collapse warning.
"""

from __future__ import annotations

import json
import math
import os
import sys

# Representation std (of L2-normalised features, times sqrt(D)) is about 1 for spread-out features and tends
# to 0 under complete collapse (Chen and He 2021, SimSiam, Fig. 2). Below this the run is warned once.
COLLAPSE_STD = 0.1


class MetricsWriter:
  """Appends step metrics and evaluations; on resume, drops the lines of steps after the checkpoint."""

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int = 0):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._warned = False
    self._tensorboard = None
    if not enabled:
      return
    if os.path.exists(self.path):
      with open(self.path) as f:
        kept = [line for line in f if line.strip() and json.loads(line).get("step", 0) <= resume_step]
      with open(self.path, "w") as f:
        f.writelines(kept)
    try:
      from tensorboardX import SummaryWriter
      self._tensorboard = SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=resume_step + 1
                                        if resume_step else None)
    except ImportError:                      # TensorBoard files are optional; metrics.jsonl is always written
      self._tensorboard = None

  def write(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
    if not self.enabled:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps({"step": step, "kind": prefix, **metrics}) + "\n")
    if self._tensorboard is not None:
      for name, value in metrics.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
          self._tensorboard.add_scalar(f"{prefix}/{name}", value, step)
      self._tensorboard.flush()
    std = metrics.get("rep_std")
    if std is not None and std < COLLAPSE_STD and not self._warned:
      self._warned = True
      print(f"warning: step {step}: representation std {std:.3g} < {COLLAPSE_STD} (1 = spread out, 0 = "
            "collapsed); the representations may be collapsing", file=sys.stderr, flush=True)

  def close(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.close()
