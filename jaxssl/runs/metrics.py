"""Metrics on disk: ``WORKDIR/metrics.jsonl`` (one JSON object per line) and TensorBoard event files in
``WORKDIR/tensorboard``, written by process 0 only; plus the representation-collapse warning. TensorBoard also
gets the config (as text, and its scalar fields in the HPARAMS tab beside the run's accuracies) and pictures
(the views at the start, a masked method's reconstructions at each evaluation).
"""

from __future__ import annotations

import json
import math
import sys

from jaxssl.runs.run_identity import flat

# Representation std (of L2-normalised features, times sqrt(D)) is about 1 for spread-out features and tends
# to 0 under complete collapse (Chen and He 2021, SimSiam, Fig. 2). Below this the run is warned once.
COLLAPSE_STD = 0.1


# The evaluations' scores the HPARAMS tab shows beside each run's config.
HPARAM_METRICS = ("knn_accuracy", "online_probe_accuracy", "linear_top1", "top1")


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

  def write_config(self, config) -> None:
    """The config to TensorBoard, once at the start of a run: as text, and its fields with one value each
    (numbers, strings, booleans; tuples as text) as hyper-parameters, against the accuracies the evaluations
    log (``eval/knn_accuracy``, ...)."""
    if self._tensorboard is None:
      return
    from tensorboardX.summary import hparams

    self._tensorboard.add_text("config", "```\n" + config.to_json_best_effort(indent=1) + "\n```", 0)
    fields = flat(json.loads(config.to_json_best_effort()))
    values = {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v)) for k, v in fields.items()
              if v is not None}
    metrics = {f"eval/{name}": 0.0 for name in HPARAM_METRICS}
    writer = self._tensorboard._get_file_writer()       # this run's own events file, not a sub-run
    for summary in hparams(values, metrics):
      writer.add_summary(summary)
    self._tensorboard.flush()

  def write_image(self, tag: str, image, step: int) -> None:
    """An RGB image [H, W, 3] in [0, 1] to TensorBoard's IMAGES tab (``jaxssl.runs.pictures``)."""
    if self._tensorboard is not None:
      self._tensorboard.add_image(tag, image, step, dataformats="HWC")
      self._tensorboard.flush()

  def close(self) -> None:
    if self._log is not None:
      self._log.flush()
    if self._tensorboard is not None:
      self._tensorboard.close()
      self._mirror.close()
