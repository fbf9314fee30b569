"""A fine-tuning's start: the encoder of a pretrained jaxssl run (``method.pretrained``, its checkpoint
``method.pretrained_step``), read from its checkpoint into the fresh variables of the new run. The trainer's
warm start (``jaxssl.train.start_from``) calls it once, before the workdir is touched, never on resume."""

from __future__ import annotations

from typing import Callable

from jaxssl.methods.base import Variables
from jaxssl.runs.checkpoint import CheckpointError
from jaxssl.runs.encoder_start import fit_layout, with_encoder
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
  params, notes = fit_layout(params, variables.params["encoder"])
  started = with_encoder(variables, params, stats, where, "; fine-tune with the pretrained run's model fields")
  print(f"fine-tuning: encoder from {workdir} at step {saved_step}"
        + (f" ({'; '.join(notes)})" if notes else ""), flush=True)
  return started
