"""Metrics on disk: ``WORKDIR/metrics.jsonl`` (one JSON object per line), written by process 0 only, and the
trackers ``metrics.writers`` names (``jaxssl.common.trackers``: TensorBoard by default, Weights & Biases); plus
the representation-collapse warning. The trackers also get the config (as text, and its fields as
hyper-parameters beside the run's accuracies) and pictures (the views, a masked method's reconstructions, the
test features for TensorBoard's projector).
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

from jaxssl.common import trackers
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
  """Appends step metrics and evaluations to ``workdir/metrics.jsonl`` (local or a URL, ``jaxssl.common.workdir``) and
  the trackers; on resume, drops the lines of steps after the checkpoint. ``history()`` reads the training lines
  back. ``config``: the run's (its ``metrics.*`` fields choose the trackers; None: TensorBoard)."""

  def __init__(self, workdir: str, enabled: bool = True, resume_step: int = 0, config=None):
    from jaxssl.common.workdir import LineLog, resolve

    self.enabled = enabled
    self.path = resolve(workdir) / "metrics.jsonl"
    self._warned = False
    self._log = None
    self._trackers: list[trackers.Tracker] = []
    if not enabled:
      return
    self._log = LineLog(self.path)
    torn = [line for line in self._log.lines if _record(line) is None]
    if torn:                                 # a crash during a write leaves a partial last line
      print(f"warning: {self.path}: dropped {len(torn)} line(s) that are not JSON records (a write cut short): "
            f"{torn[-1].strip()[:60]!r}", file=sys.stderr, flush=True)
    self._log.keep(lambda line: (record := _record(line)) is not None and record.get("step", 0) <= resume_step)
    from jaxssl.schema.fields import section_defaults

    m = config.metrics if config is not None else section_defaults("metrics")
    self._trackers = trackers.open_trackers(
        m.writers, resolve(workdir), trackers.run_name(workdir, m.run_name),
        _hparams(config) if config is not None else {}, resume_step, m.wandb_project, m.wandb_entity, m.wandb_mode)

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
    for tracker in self._trackers:
      tracker.flush()

  def write(self, step: int, metrics: dict[str, float], prefix: str = "train") -> None:
    if not self.enabled:
      return
    self._log.append(json.dumps({"step": step, "kind": prefix, **metrics}))
    finite = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    for tracker in self._trackers:
      tracker.scalars(step, prefix, finite)
    std = metrics.get("rep_std")
    if std is not None and std < COLLAPSE_STD and not self._warned:
      self._warned = True
      print(f"warning: step {step}: representation std {std:.3g} < {COLLAPSE_STD} (1 = spread out, 0 = "
            "collapsed); the representations may be collapsing", file=sys.stderr, flush=True)

  def write_config(self, config) -> None:
    """The config to the trackers, once at the start of a run: as text, and its fields with one value each
    (numbers, strings, booleans; tuples as text) as hyper-parameters, against the accuracies the evaluations
    log (``eval/knn_accuracy``, ...)."""
    for tracker in self._trackers:
      tracker.config(config.to_json_best_effort(indent=1), _hparams(config),
                     tuple(f"eval/{name}" for name in HPARAM_METRICS))

  def write_image(self, tag: str, image, step: int) -> None:
    """An RGB image [H, W, 3] in [0, 1] (``jaxssl.runs.pictures``)."""
    for tracker in self._trackers:
      tracker.image(tag, image, step)

  def write_embedding(self, features: np.ndarray, labels: list[str], images: np.ndarray, step: int) -> None:
    """Test features [N, D] with their class names and images [N, H, W, C] (uint8), for TensorBoard's
    projector (t-SNE, UMAP, PCA)."""
    for tracker in self._trackers:
      tracker.embedding(features, labels, images, step)

  def close(self) -> None:
    if self._log is not None:
      self._log.flush()
    for tracker in self._trackers:
      tracker.close()


def _hparams(config) -> dict:
  """{"section.field": value} of the config, one number, string or boolean each (tuples as JSON text)."""
  fields = flat(json.loads(config.to_json_best_effort()))
  return {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v)) for k, v in fields.items()
          if v is not None}
