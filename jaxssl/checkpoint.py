"""Checkpoints with orbax: the whole train state plus a small JSON record (data position, step, config name).

Layout: ``WORKDIR/checkpoints/STEP/{state,meta}``, the last ``keep`` kept, WORKDIR local or a URL
(``jaxssl.workdir``). orbax writes each step to a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact; a restore always reads a finished one.

Saving is asynchronous: ``save`` returns once the state is copied off the accelerator, and the files are
written in the background while training goes on (the next save, ``close`` or a restore waits for it).
"""

from __future__ import annotations

from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxssl.workdir import resolve


class CheckpointError(ValueError):
  """A checkpoint that cannot be restored into this run (corrupt, or from a different model)."""


def _first_line(error: Exception) -> str:
  text = str(error).strip()
  return (text.splitlines()[0] if text else type(error).__name__)[:300]


def _key_name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def shapes_by_path(tree: Any) -> dict[str, tuple[int, ...]]:
  """{"params/encoder/...": shape} for every array leaf of a pytree or of orbax's tree metadata."""
  return {"/".join(_key_name(k) for k in path): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_leaves_with_path(tree) if hasattr(leaf, "shape")}


def first_difference(saved: dict, expected: dict) -> str | None:
  """The first path whose presence or shape differs between two shapes_by_path maps, described; or None."""
  for path in sorted(set(saved) | set(expected)):
    if path not in saved:
      return f"{path} is missing from the checkpoint"
    if path not in expected:
      return f"the checkpoint has {path}, which this config's model lacks"
    if saved[path] != expected[path]:
      return f"{path} has shape {saved[path]} in the checkpoint but {expected[path]} here"
  return None


class Checkpointer:
  """Saves and restores (TrainState, meta) pairs under ``workdir/checkpoints``."""

  def __init__(self, workdir: str, keep: int = 3, asynchronous: bool = True):
    self.directory = resolve(workdir) / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=asynchronous)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Starts writing the state and meta as checkpoint ``step`` (all processes call this; orbax coordinates).

    Returns once the state's arrays are copied to host memory, so the caller may donate or overwrite them."""
    self._manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     meta=ocp.args.JsonSave(meta)), force=True)

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
    """The state (shaped and sharded like ``abstract_state``) and meta of ``step`` (default: the latest).

    Raises CheckpointError with one line when the checkpoint does not fit this run or cannot be read.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    where = self.directory / str(step)
    advice = "use a new workdir, or the config the checkpoint was written with"
    try:
      saved = ocp.StandardCheckpointer().metadata(where / "state")
      difference = first_difference(shapes_by_path(getattr(saved, "item_metadata", saved)),
                                    shapes_by_path(target))
    except Exception as e:  # noqa: BLE001
      raise CheckpointError(f"checkpoint {where} cannot be read ({_first_line(e)}); {advice}") from None
    if difference:
      raise CheckpointError(f"checkpoint {where} does not fit this run's config: {difference}; {advice}")
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    except Exception as e:  # noqa: BLE001 -- orbax raises many types; the user needs one line
      raise CheckpointError(f"checkpoint {where} cannot be restored into this run ({_first_line(e).rstrip(':')})"
                            f"; {advice}") from None
    return restored["state"], restored["meta"]

  def restore_meta(self, step: int | None = None) -> dict:
    """Only the JSON record of ``step`` (default: the latest): what is needed to rebuild the run's model."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    try:
      return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001
      raise CheckpointError(f"checkpoint {self.directory}/{step} cannot be read ({_first_line(e)})") from None

  def close(self) -> None:
    """Waits for the checkpoints in flight, then releases orbax's threads."""
    self._manager.wait_until_finished()
    self._manager.close()
