"""Checkpoints with orbax: the whole train state plus a small JSON record (data position, step, config name).

Layout: ``WORKDIR/checkpoints/STEP/{state,meta}``, the last ``keep`` kept, WORKDIR local or a URL
(``jaxssl.common.workdir``). orbax writes each step to a temporary directory and renames it when complete, so a run
killed mid-save leaves the previous checkpoint intact; a restore always reads a finished one.

Saving is asynchronous: ``save`` returns once the state is copied off the accelerator, and the files are
written in the background while training goes on (the next save, ``close`` or a restore waits for it).

Every checkpoint's record holds the shape and a CRC-32 of each array of the state. ``restore_intact`` tells a
checkpoint that does not fit the run (its recorded shapes differ from this config's: ``CheckpointMismatch``)
from a damaged one (unreadable, partial, a stray folder, or arrays that no longer match their checksums:
``CheckpointDamaged``), and falls back past damaged ones to the newest intact checkpoint, moving the damaged
folders aside (``checkpoints/damaged-STEP``) so that nothing is deleted and the run can save those steps again.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxssl.common.workdir import resolve
from jaxssl.runs import orbax_noise

MANIFEST = "files.json"

# orbax's replica-parallel save writes a replicated array from all its replicas, each a slice. Each slice costs a
# compiled program per array shape and device, which for small arrays takes longer than the write it spreads (a
# tiny model's state on 8 CPU devices: 144 programs, 3.3 s of a 3.5 s save with the XLA cache warm, 8.9 s cold).
# Arrays whose slice would be under this many bytes are written whole by one replica; larger ones stay spread
# over the replicas (over the hosts of a pod). orbax's own default is 0: every array is sliced.
MIN_REPLICA_SLICE_BYTES = 1 << 20


def _state_handler() -> ocp.PyTreeCheckpointHandler:
  """The handler of the state item: orbax's standard one (StandardCheckpointHandler is this handler with these
  defaults) but for the jax.Array handler's ``min_slice_bytes_for_replica_parallel``. Same files, same reader."""
  th = ocp.type_handlers
  default_array = th.get_type_handler(jax.Array)
  registry = th.create_type_handler_registry(
      (int, th.ScalarHandler()), (float, th.ScalarHandler()), (np.number, th.ScalarHandler()),
      (np.ndarray, th.NumpyHandler()),
      (jax.Array, th.ArrayHandler(min_slice_bytes_for_replica_parallel=MIN_REPLICA_SLICE_BYTES,
                                  # orbax's per-array metadata files, as its default handler writes them
                                  array_metadata_store=getattr(default_array, "_array_metadata_store", None))))
  return ocp.PyTreeCheckpointHandler(save_concurrent_gb=96, restore_concurrent_gb=96,
                                     type_handler_registry=registry)


def _crc_of_file(path) -> str:
  crc = 0
  with path.open("rb") as f:
    while chunk := f.read(1 << 22):
      crc = zlib.crc32(chunk, crc)
  return f"{crc:08x}"


def _file_manifest(folder) -> dict[str, list]:
  """{relative path: [size, CRC-32]} of every file under ``folder`` but the manifest itself."""
  out, pending = {}, [folder]
  while pending:                                  # a walk by iterdir: epath has no recursive glob on GCS
    for path in sorted(pending.pop().iterdir()):
      if path.is_dir():
        pending.append(path)
      elif path.name != MANIFEST:
        out[str(path.relative_to(folder))] = [path.stat().length, _crc_of_file(path)]
  return out


def _manifest_problem(folder) -> str | None:
  """What differs between a checkpoint's files and its manifest (None when it matches, or has no manifest:
  killed before it was written; the arrays' checksums still guard it)."""
  manifest = folder / MANIFEST
  if not manifest.exists():
    return None
  try:
    recorded = json.loads(manifest.read_text())
  except (OSError, ValueError) as e:
    return f"its manifest cannot be read ({_first_line(e)})"
  for name, (size, crc) in recorded.items():
    path = folder / name
    if not path.exists():
      return f"{name} is missing"
    length = path.stat().length
    if length != size:
      return f"{name} has {length} bytes, {size} when saved"
    if _crc_of_file(path) != crc:
      return f"{name} does not match its checksum"
  return None


class CheckpointError(ValueError):
  """A checkpoint that cannot be restored into this run (corrupt, or from a different model)."""


class CheckpointDamaged(CheckpointError):
  """A checkpoint whose files are missing, unreadable or no longer match their checksums."""


class CheckpointMismatch(CheckpointError):
  """An intact checkpoint of another model: its recorded shapes differ from this run's."""


def _first_line(error: Exception) -> str:
  text = re.sub(r"<[^<>]*>", "", str(error)).strip()          # no "<bound method pybind11...>" in a message
  return (text.splitlines()[0].strip() if text else type(error).__name__)[:200] or type(error).__name__


def _os_cause(error: Exception) -> str | None:
  """The operating system's reason inside a TensorStore or orbax message ("No space left on device"), which
  the first 200 characters of a long message may not reach."""
  if isinstance(error, OSError) and error.strerror:
    return error.strerror
  code = re.search(r"os_error_code='?(\d+)", str(error))
  return os.strerror(int(code.group(1))) if code else None


def _host_copy(leaf) -> np.ndarray:
  """The whole array on this host: one replica of a replicated array (also when other processes hold the
  others), the shards joined for a sharded one (FSDP), so that its checksum does not depend on the layout and
  a state saved on 8 devices checks out when restored onto 4, or onto a replicated run."""
  if not hasattr(leaf, "addressable_data"):
    return np.asarray(leaf)
  if leaf.is_fully_replicated:
    return np.asarray(leaf.addressable_data(0))
  if leaf.is_fully_addressable:
    return np.asarray(leaf)
  from jax.experimental import multihost_utils        # shards on other processes: every process gets them all
  return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))


def checksums(tree: Any) -> dict[str, str]:
  """{"params/encoder/...": CRC-32 (hex) of the array's bytes} for every array leaf."""
  return {name: f"{zlib.crc32(np.ascontiguousarray(_host_copy(leaf)).view(np.uint8).reshape(-1)):08x}"
          for name, leaf in _array_leaves(tree)}


def _key_name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _array_leaves(tree: Any):
  """("params/encoder/...", leaf) for every leaf with a shape (arrays, or orbax's metadata of them)."""
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    if hasattr(leaf, "shape"):
      yield "/".join(_key_name(k) for k in path), leaf


def shapes_by_path(tree: Any) -> dict[str, tuple[int, ...]]:
  """{"params/encoder/...": shape} for every array leaf of a pytree or of orbax's tree metadata."""
  return {name: tuple(leaf.shape) for name, leaf in _array_leaves(tree)}


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


def has_checkpoints(root) -> bool:
  """Whether the workdir ``root`` (an etils path) holds any checkpoint, finished or in flight, without creating
  anything there (a Checkpointer creates its directory)."""
  folder = root / "checkpoints"
  return folder.is_dir() and any(p.name.split(".")[0].isdigit() for p in folder.iterdir())


def newest_step(root) -> int | None:
  """The newest finished checkpoint's step in the workdir ``root`` (an etils path), read from the folder names
  without opening anything; None if there is none."""
  folder = root / "checkpoints"
  steps = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
  return max(steps, default=None)


def _subtree(tree: Any, name: str) -> Any:
  """The node of a nested mapping at ``name`` ("params/encoder"), or None where it has none."""
  for part in name.split("/"):
    if tree is None or not hasattr(tree, "keys") or part not in tree.keys():
      return None
    tree = tree[part]
  return tree


class Checkpointer:
  """Saves and restores (TrainState, meta) pairs under ``workdir/checkpoints``."""

  def __init__(self, workdir: str, keep: int = 3, asynchronous: bool = True):
    orbax_noise.install()                       # once per process: when checkpoints are opened, not on import
    self.directory = resolve(workdir) / "checkpoints"
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                           enable_async_checkpointing=asynchronous)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers={
        "state": _state_handler(), "meta": ocp.JsonCheckpointHandler()})
    self._unsealed: list[int] = []              # saved steps whose file manifest is not written yet
    self._closed = False

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def steps(self) -> list[int]:
    """The steps of the checkpoints on disk, oldest first (read afresh: another process may be saving)."""
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Starts writing the state and meta as checkpoint ``step`` (all processes call this; orbax coordinates).

    Returns once the state's arrays are copied to host memory, so the caller may donate or overwrite them."""
    meta = {**meta, "shapes": {k: list(v) for k, v in shapes_by_path(state).items()},
            "checksums": checksums(state)}
    try:
      self._seal()                              # waits for the previous save, then records its files
      self._manager.save(step, args=ocp.args.Composite(state=ocp.args.PyTreeSave(state),
                                                       meta=ocp.args.JsonSave(meta)), force=True)
    except Exception as e:  # noqa: BLE001 -- a full disk or a lost bucket: one line, not orbax's traceback
      raise self._write_error(e) from None
    self._unsealed.append(step)

  def _seal(self) -> None:
    """Once the saves in flight are on disk, writes each one's manifest, ``STEP/files.json``: the size and CRC-32
    of every file. A restore checks it before orbax reads a byte, so damaged files never reach TensorStore."""
    self._manager.wait_until_finished()
    if jax.process_index() == 0:
      for step in self._unsealed:
        folder = self.directory / str(step)
        if folder.exists():
          (folder / MANIFEST).write_text(json.dumps(_file_manifest(folder), indent=0))
    self._unsealed = []

  def _write_error(self, error: Exception) -> CheckpointError:
    cause = _os_cause(error)
    return CheckpointError(f"a checkpoint could not be written to {self.directory}{': ' + cause if cause else ''} "
                           f"({_first_line(error)}); the checkpoints before it are intact: free space (or fix the "
                           "path) and run again to resume")

  def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
    """The state (shaped and sharded like ``abstract_state``) and meta of ``step`` (default: the latest).

    Raises CheckpointMismatch (another model) or CheckpointDamaged (missing, unreadable or altered files), each
    with one line.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
    expected = shapes_by_path(target)
    where = self.directory / str(step)
    problem = _manifest_problem(where)
    if problem:
      raise CheckpointDamaged(f"checkpoint {where} is damaged: {problem}")
    advice = "use a new workdir, or the config the checkpoint was written with"
    try:
      recorded = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001 -- orbax raises many types; the user needs one line
      raise CheckpointDamaged(f"checkpoint {where} is damaged: its record cannot be read "
                              f"({_first_line(e)})") from None
    if "shapes" in recorded:
      difference = first_difference({k: tuple(v) for k, v in recorded["shapes"].items()}, expected)
      if difference:
        raise CheckpointMismatch(f"checkpoint {where} does not fit this run's config: {difference}; {advice}")
    try:
      saved = ocp.StandardCheckpointer().metadata(where / "state")
      difference = first_difference(shapes_by_path(getattr(saved, "item_metadata", saved)), expected)
    except Exception as e:  # noqa: BLE001
      raise CheckpointDamaged(f"checkpoint {where} is damaged: its state cannot be read ({_first_line(e)})") from None
    if difference and "shapes" in recorded:
      raise CheckpointDamaged(f"checkpoint {where} is damaged: its state files disagree with its record "
                              f"({difference})")
    if difference:                # a checkpoint from before records held shapes
      raise CheckpointMismatch(f"checkpoint {where} does not fit this run's config: {difference}; {advice}")
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.PyTreeRestore(target, restore_args=ocp.checkpoint_utils.construct_restore_args(target)),
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # noqa: BLE001 -- orbax raises many types; the user needs one line
      raise CheckpointDamaged(f"checkpoint {where} is damaged: its arrays cannot be read "
                              f"({_first_line(e).rstrip(':')})") from None
    state, meta = restored["state"], restored["meta"]
    for path, value in checksums(state).items():
      if meta.get("checksums", {}).get(path, value) != value:
        raise CheckpointDamaged(f"checkpoint {where} is damaged: {path} does not match its checksum")
    return state, meta

  def restore_intact(self, abstract_state: Any) -> tuple[Any, dict, list[str]]:
    """The newest checkpoint that is intact: (state, meta, one line per damaged newer checkpoint, moved aside).

    A CheckpointMismatch is raised at once (a damaged checkpoint says nothing of the run's model; an intact one
    of another model means the workdir holds another run). Raises CheckpointDamaged when none is intact.
    """
    damaged = []
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        state, meta = self.restore(abstract_state, step)
      except CheckpointDamaged as e:
        damaged.append((step, str(e)))
        continue
      self._move_aside([s for s, _ in damaged])
      return state, meta, [why for _, why in damaged]
    raise CheckpointDamaged(f"no intact checkpoint in {self.directory}: " + "; ".join(why for _, why in damaged)
                            + "; move the checkpoints away to start the run again")

  def _move_aside(self, steps: list[int]) -> None:
    """Renames damaged step folders to damaged-STEP (nothing is deleted) and rereads the step list."""
    if not steps:
      return
    if jax.process_index() == 0:
      for step in steps:
        aside = self.directory / f"damaged-{step}"
        suffix = 0
        while aside.exists():
          suffix += 1
          aside = self.directory / f"damaged-{step}.{suffix}"
        (self.directory / str(step)).rename(aside)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices("jaxssl: damaged checkpoints moved aside")
    self._manager.reload()

  def restore_subtrees(self, names: tuple[str, ...], step: int | None = None) -> tuple[dict, int]:
    """Only the parts of the saved state at ``names`` (e.g. ``("params/encoder", "batch_stats/encoder")``), on
    this process's first device, whatever the rest of the state (an optimizer of another shape) looks like:
    ({name: pytree}, the step). A name the checkpoint lacks is left out. Raises CheckpointDamaged (one line)
    when the files are missing, unreadable or do not match their checksums."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    where = self.directory / str(step)
    problem = _manifest_problem(where)
    if problem:
      raise CheckpointDamaged(f"checkpoint {where} is damaged: {problem}")
    try:
      saved = ocp.StandardCheckpointer().metadata(where / "state")
      saved = getattr(saved, "item_metadata", saved)
      target = {}                                  # the wanted subtrees, nested as in the state
      for name in names:
        node = _subtree(saved, name)
        if node is not None:
          *parents, last = name.split("/")
          inner = target
          for part in parents:
            inner = inner.setdefault(part, {})
          inner[last] = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), node)
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      restore_args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=device), target)
      restored = ocp.PyTreeCheckpointer().restore(where / "state", args=ocp.args.PyTreeRestore(
          item=target, restore_args=restore_args, partial_restore=True))
      meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001 -- orbax raises many types; the user needs one line
      raise CheckpointDamaged(f"checkpoint {where} is damaged: its arrays cannot be read "
                              f"({_first_line(e).rstrip(':')})") from None
    for path, value in checksums(restored).items():
      if meta.get("checksums", {}).get(path, value) != value:
        raise CheckpointDamaged(f"checkpoint {where} is damaged: {path} does not match its checksum")
    return {name: node for name in names if (node := _subtree(restored, name)) is not None}, step

  def restore_meta(self, step: int | None = None) -> dict:
    """Only the JSON record of ``step`` (default: the latest): what is needed to rebuild the run's model."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"no checkpoint in {self.directory}")
    try:
      return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001
      raise CheckpointError(f"checkpoint {self.directory}/{step} cannot be read ({_first_line(e)})") from None

  def wait(self) -> None:
    """Returns once every checkpoint saved so far is on disk and sealed (CheckpointError, one line, if a write
    failed)."""
    try:
      self._seal()
    except Exception as e:  # noqa: BLE001 -- the background write failed (a full disk): one line
      raise self._write_error(e) from None

  def close(self) -> None:
    """Waits for the checkpoints in flight, then releases orbax's threads (a second call does nothing)."""
    if self._closed:
      return
    self._closed = True
    try:
      self._seal()
    except Exception as e:  # noqa: BLE001 -- the background write failed (a full disk): one line
      raise self._write_error(e) from None
    finally:
      self._manager.close()
