"""A finished (or interrupted) run, read back from its workdir: config, model, train state, encoder.

    module, variables = jaxssl.load_encoder("runs/simclr")
    features = module.apply(variables, (images - mean) / std, train=False)   # [N, D]
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import ml_collections

from jaxssl.common.workdir import resolve
from jaxssl.runs.checkpoint import CheckpointError, Checkpointer
from jaxssl.schema import defaults


class Run(NamedTuple):
  config: ml_collections.ConfigDict
  trainer: Any            # jaxssl.engine.train_step.Trainer
  state: Any              # jaxssl.engine.state.TrainState, on the default device
  meta: dict              # the checkpoint's record: evals, results so far, data position


def load_config(workdir: str, field: str = "workdir") -> ml_collections.ConfigDict:
  """The config a run in ``workdir`` was started with (its config.json); errors name ``field`` (the command
  line's flag, or the config field, that gave the workdir)."""
  path = resolve(workdir) / "config.json"
  if not path.is_file():
    raise CheckpointError(f"{field}={workdir!r} has no config.json: not a jaxssl run directory")
  try:
    saved = json.loads(path.read_text())
    name = saved["method"]["name"]
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(f"{field}={workdir!r}: its config.json is damaged ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:120]}); restore it from a copy of the run") from None
  # Fields added to the schema since the run was made take their defaults.
  config = defaults.get_config(name)
  _merge(config, saved)
  return config


def _merge(config: ml_collections.ConfigDict, saved: dict) -> None:
  for key, value in saved.items():
    if isinstance(value, dict) and isinstance(config.get(key), ml_collections.ConfigDict):
      _merge(config[key], value)
    else:
      config[key] = value


def open_checkpoints(workdir: str, field: str = "workdir") -> Checkpointer:
  """The Checkpointer of a run directory that has checkpoints/ (CheckpointError naming ``field`` if not; a
  Checkpointer would create the folder)."""
  if not (resolve(workdir) / "checkpoints").is_dir():
    raise CheckpointError(f"{field}={workdir!r} has no checkpoints/ to restore")
  return Checkpointer(workdir)


def load_run(workdir: str, step: int | None = None, axis_name: str | None = None, field: str = "workdir") -> Run:
  """Rebuilds the run's trainer from config.json and restores checkpoint ``step``.

  Without ``step``, the newest checkpoint that can be read. A training still running in the workdir saves and
  rotates checkpoints meanwhile, so the listing is read again after each failure: a checkpoint that was rotated
  away while it was read is passed over silently (a newer one took its place), one still there but unreadable
  (damaged) with a warning line (and left where it is)."""
  import sys

  from jaxssl.runs.checkpoint import CheckpointMismatch

  config = load_config(workdir, field)
  checkpointer = open_checkpoints(workdir, field)
  built: dict = {}
  try:
    steps = checkpointer.steps()
    if step is not None and step not in steps:
      shown = ", ".join(map(str, steps)) or "none"
      raise CheckpointError(f"--step={step}: {checkpointer.directory} has "
                            f"no checkpoint of that step (it has: {shown})")
    if step is not None:
      try:
        return _restore(config, checkpointer, step, axis_name, built)
      except CheckpointError as e:
        if step not in checkpointer.steps():
          raise CheckpointError(f"step {step} of {checkpointer.directory} was rotated away while it was read (a "
                                "training is saving there); name a newer step, or none for the newest") from None
        raise e
    last, passed = "", set()                    # why the newest unreadable one could not be read; steps tried
    while True:
      candidates = [s for s in sorted(checkpointer.steps(), reverse=True) if s not in passed]
      if not candidates:
        break
      candidate = candidates[0]
      try:
        return _restore(config, checkpointer, candidate, axis_name, built)
      except CheckpointError as e:
        if isinstance(e, CheckpointMismatch):   # another model: no older one fits
          raise
        passed.add(candidate)
        if candidate in checkpointer.steps():
          last = str(e)
          print(f"warning: {e}; trying the checkpoint before it", file=sys.stderr, flush=True)
    raise CheckpointError(f"{field}={workdir!r}: no checkpoint can be read" +
                          (f" ({last})" if last else f" ({checkpointer.directory} is empty)"))
  finally:
    checkpointer.close()


def _restore(config, checkpointer: Checkpointer, step: int, axis_name: str | None, built: dict) -> Run:
  """Checkpoint ``step`` onto one local device. ``built`` caches the trainer and abstract state by what they
  depend on, so a second try (the first checkpoint rotated away meanwhile) reads arrays at once."""
  from jaxssl.engine import train_step

  meta = checkpointer.restore_meta(step)
  key = (int(meta["total_steps"]), int(meta.get("num_classes", 0)), int(meta.get("channels", 1)))
  if key not in built:
    trainer = train_step.build(config, key[0], axis_name=axis_name, num_classes=key[1])
    abstract = jax.eval_shape(lambda: train_step.init_state(trainer, jax.random.key(0), key[2]))
    # Onto one local device, whatever mesh the run was saved from (orbax needs the target's sharding).
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    built[key] = trainer, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), abstract)
  trainer, abstract = built[key]
  state, meta = checkpointer.restore(abstract, step)
  return Run(config, trainer, state, meta)


def load_encoder(source: str, step: int | None = None, **weights_options) -> tuple[nn.Module, dict]:
  """The encoder in ``source``: (Flax module, variables), ready for ``module.apply``.

  ``source`` is a jaxssl run directory (its trained encoder at checkpoint ``step``, default the latest), or
  weights from the PyTorch world: a timm hub folder or a weights file (``jaxssl.weights.load``, which takes
  ``weights_options``: ``num_heads``, ``arch``, ``pool``, ``image_size``). The module takes float images
  [N, H, W, C] normalised as the encoder was trained (a run: ``(x / 255 - config.data.mean) /
  config.data.std``, see ``load_config``; timm: its ``pretrained_cfg`` mean and std), with ``train=False``,
  and returns features [N, D]. BatchNorm is not synchronised across devices (``axis_name=None``), so it can be
  applied anywhere.
  """
  from jaxssl import weights

  if not weights.is_jaxssl_run(source) and (os.path.isfile(source) or (
      os.path.isdir(source) and not os.path.isdir(os.path.join(source, "checkpoints")))):
    if step is not None:
      raise weights.WeightsError(f"step={step}: {source} is a weights file or folder, which has no steps")
    return weights.load(source, **weights_options)
  run = load_run(source, step)
  module = run.trainer.model.encoder
  variables = {"params": run.state.params["encoder"], "batch_stats": run.state.batch_stats.get("encoder", {})}
  return module, variables
