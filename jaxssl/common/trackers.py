"""Trackers: where a run's metrics, config and pictures go besides ``metrics.jsonl`` (``metrics.writers``).

- ``tensorboard``: event files in the workdir itself, so that ``tensorboard --logdir runs`` names each run by its
  workdir (``runs/vicreg`` shows as ``vicreg``; a workdir started before this keeps its ``tensorboard/``
  folder). Scalars, the config as text and as hyper-parameters (the HPARAMS tab), images, and test features
  for the PROJECTOR tab, which draws their t-SNE, UMAP or PCA (``jaxssl.common.projector``).
- ``wandb``: Weights & Biases (``pip install 'jaxssl[wandb]'``): scalars against the run's step, the config and
  the images, in a W&B run named as above whose id is kept in the workdir (``wandb_id``), so that a resumed run
  goes on in the same W&B run. Offline mode (``metrics.wandb_mode=offline``) writes under ``WORKDIR/wandb`` for
  ``wandb sync`` later. The console stays the terminal's (W&B's capture is off).

Each tracker takes the same calls (``Tracker``); ``MetricsWriter`` (``jaxssl.runs.metrics``) holds the run's.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from typing import Any, Protocol

import numpy as np
from etils import epath

from jaxssl.common import projector
from jaxssl.common.workdir import Mirror, is_url

WRITERS = ("tensorboard", "wandb")
PACKAGES = {"tensorboard": "tensorboardX", "wandb": "wandb"}     # the module each writer imports

_EVENTS = "events.out.tfevents"


class TrackerError(RuntimeError):
  """A tracker that cannot start (W&B online without a login); the message is one line."""


class Tracker(Protocol):
  def scalars(self, step: int, prefix: str, metrics: dict[str, float]) -> None: ...
  def config(self, text: str, values: dict[str, Any], metrics: tuple[str, ...]) -> None: ...
  def image(self, tag: str, image: np.ndarray, step: int) -> None: ...
  def embedding(self, features: np.ndarray, labels: list[str], images: np.ndarray, step: int) -> None: ...
  def flush(self) -> None: ...
  def close(self) -> None: ...


def run_name(workdir: str, name: str = "") -> str:
  """``name``, or the workdir's last folder (``runs/vicreg/`` and ``gs://b/runs/vicreg`` -> ``vicreg``)."""
  return name or str(workdir).rstrip("/").rsplit("/", 1)[-1] or "jaxssl"


class TensorBoard:
  """TensorBoard event files (tensorboardX) in ``root``, the workdir."""

  def __init__(self, root: epath.Path, resume_step: int):
    from tensorboardX import SummaryWriter

    older = root / "tensorboard"
    self.folder = older if older.exists() else root
    self._mirror = Mirror(self.folder, mine=lambda name: name.startswith(_EVENTS))
    self._writer = SummaryWriter(self._mirror.path, purge_step=resume_step + 1 if resume_step else None)

  def scalars(self, step: int, prefix: str, metrics: dict[str, float]) -> None:
    for name, value in metrics.items():
      self._writer.add_scalar(f"{prefix}/{name}", value, step)
    self._writer.flush()                    # to the local file (the mirror's, for a URL: pushed at flush())

  def config(self, text: str, values: dict[str, Any], metrics: tuple[str, ...]) -> None:
    from tensorboardX.summary import hparams

    self._writer.add_text("config", "```\n" + text + "\n```", 0)
    writer = self._writer._get_file_writer()       # this run's own events file, not a sub-run
    for summary in hparams(values, {name: 0.0 for name in metrics}):
      writer.add_summary(summary)
    self._writer.flush()

  def image(self, tag: str, image: np.ndarray, step: int) -> None:
    self._writer.add_image(tag, image, step, dataformats="HWC")
    self._writer.flush()

  def embedding(self, features: np.ndarray, labels: list[str], images: np.ndarray, step: int) -> None:
    projector.write(self.folder, features, labels, images, step)

  def flush(self) -> None:
    self._writer.flush()
    self._mirror.push()

  def close(self) -> None:
    self._writer.close()
    self._mirror.close()


class WandB:
  """A Weights & Biases run: ``metrics.wandb_*`` fields."""

  def __init__(self, root: epath.Path, name: str, values: dict[str, Any], project: str, entity: str = "",
               mode: str = ""):
    import wandb

    id_file = root / "wandb_id"
    run_id = id_file.read_text().strip() if id_file.exists() else ""
    if not run_id:
      run_id = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
      root.mkdir(parents=True, exist_ok=True)
      id_file.write_text(run_id + "\n")
    # W&B writes its own files locally: in the workdir, or for a URL in WANDB_DIR (else the temporary folder).
    local = (os.environ.get("WANDB_DIR") or tempfile.gettempdir()) if is_url(root) else str(root)
    try:
      self._run = wandb.init(project=project, entity=entity or None, name=name, id=run_id, resume="allow",
                             dir=local, mode=mode or None, config=values, settings=wandb.Settings(console="off", quiet=True))
    except Exception as e:                  # wandb's errors (no login, no network) are its own classes
      raise TrackerError(f"metrics.writers: W&B could not start ({' '.join(str(e).split())[:200]}); log in "
                         "(wandb login), or set metrics.wandb_mode=offline and sync later") from None
    self._run.define_metric("step", hidden=True)
    self._run.define_metric("*", step_metric="step")
    self._wandb = wandb

  def scalars(self, step: int, prefix: str, metrics: dict[str, float]) -> None:
    self._run.log({"step": step, **{f"{prefix}/{name}": value for name, value in metrics.items()}})

  def config(self, text: str, values: dict[str, Any], metrics: tuple[str, ...]) -> None:
    self._run.config.update(values, allow_val_change=True)

  def image(self, tag: str, image: np.ndarray, step: int) -> None:
    self._run.log({"step": step, tag: self._wandb.Image(projector.to_uint8(image))})

  def embedding(self, features: np.ndarray, labels: list[str], images: np.ndarray, step: int) -> None:
    pass                                    # TensorBoard's projector only

  def flush(self) -> None:
    pass                                    # W&B's own process writes as it goes

  def close(self) -> None:
    self._run.finish()


def open_trackers(writers: tuple[str, ...], root: epath.Path, name: str, values: dict[str, Any], resume_step: int,
                  wandb_project: str = "jaxssl", wandb_entity: str = "", wandb_mode: str = "") -> list[Tracker]:
  """The trackers ``writers`` names, opened for the run in ``root`` (the workdir) named ``name``, whose config's
  fields are ``values`` ({"section.field": value})."""
  opened: list[Tracker] = []
  for writer in writers:
    if writer == "tensorboard":
      opened.append(TensorBoard(root, resume_step))
    elif writer == "wandb":
      opened.append(WandB(root, name, values, wandb_project, wandb_entity, wandb_mode))
    else:
      raise ValueError(f"metrics.writers: unknown writer {writer!r}")
  return opened
