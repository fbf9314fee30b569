"""A fine-tuning's start: the encoder of a pretrained jaxssl run (``method.pretrained``, its checkpoint
``method.pretrained_step``), read from its checkpoint into the fresh variables of the new run. The trainer's
warm start (``jaxssl.train.start_from``) calls it once, before the workdir is touched, never on resume."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from jaxssl.methods.base import Variables
from jaxssl.models.vit import for_global_pool, to_block_layout
from jaxssl.runs.checkpoint import CheckpointError, first_difference, shapes_by_path
from jaxssl.runs.restore import load_config, open_checkpoints


def starter(workdir: str, step: int) -> Callable[[Variables], Variables]:
  """Fresh variables -> the same with the encoder of the run in ``workdir`` at ``step`` (-1: the latest)."""
  return lambda variables: encoder_from_run(variables, workdir, step)


def encoder_from_run(variables: Variables, workdir: str, step: int) -> Variables:
  """``variables`` with the encoder's parameters and BatchNorm statistics replaced by those of the run in
  ``workdir`` at checkpoint ``step`` (-1: the latest). Only those are read from the checkpoint, so a run saved
  with another optimizer or method state still serves. Raises CheckpointError (one line) when the run cannot
  be read or its encoder is another architecture."""
  load_config(workdir, "config.method.pretrained")   # a run directory (CheckpointError: not one, or damaged)
  checkpointer = open_checkpoints(workdir, "config.method.pretrained")
  try:
    steps = checkpointer.steps()
    if step >= 0 and step not in steps:
      raise CheckpointError(f"config.method.pretrained_step={step} (--step): {checkpointer.directory} has no "
                            f"checkpoint of that step (it has: {', '.join(map(str, steps)) or 'none'})")
    parts, saved_step = checkpointer.restore_subtrees(("params/encoder", "batch_stats/encoder"),
                                                      None if step < 0 else step)
  finally:
    checkpointer.close()
  where = f"config.method.pretrained={workdir!r} (step {saved_step})"
  params, stats = parts.get("params/encoder"), parts.get("batch_stats/encoder", {})
  if params is None:
    raise CheckpointError(f"{where}: its model has no 'encoder' parameters")
  params, restacked = to_block_layout(params, variables.params["encoder"])
  params, fresh_fc_norm = for_global_pool(params, variables.params["encoder"])
  for name, mine, theirs in (("parameters", variables.params["encoder"], params),
                             ("BatchNorm statistics", variables.batch_stats.get("encoder", {}), stats)):
    difference = first_difference(shapes_by_path(theirs), shapes_by_path(mine))
    if difference:
      raise CheckpointError(f"{where}: its encoder's {name} do not fit this config's encoder ({difference}); "
                            "fine-tune with the pretrained run's model fields")
  notes = [f"its blocks {'stacked for' if 'blocks' in params else 'unstacked from'} model.scan_layers"] * restacked
  notes += ["its final norm left out, fc_norm new: model.pool='global'"] * fresh_fc_norm
  print(f"fine-tuning: encoder from {workdir} at step {saved_step}"
        + (f" ({'; '.join(notes)})" if notes else ""), flush=True)
  # On the host, in the fresh trees' structure (the shapes were just compared path by path).
  as_fresh = lambda fresh, saved: jax.tree.map(lambda _, x: np.asarray(x), fresh, saved)
  new_params = {**variables.params, "encoder": as_fresh(variables.params["encoder"], params)}
  new_stats = dict(variables.batch_stats)
  if stats:
    new_stats["encoder"] = as_fresh(variables.batch_stats["encoder"], stats)
  return Variables(new_params, new_stats)
