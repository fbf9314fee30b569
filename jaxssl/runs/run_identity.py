"""A workdir belongs to one run: the config it was started with, and one process writing to it at a time.

- ``config_changes``: the fields in which a rerun's config differs from the workdir's ``config.json``. The
  fields in ``NEUTRAL`` (logging, trackers, checkpoint cadence, prefetch, evaluation settings, the state's placement on
  the devices) never change what is trained and may differ; any other difference (method, model, data,
  optimizer, seed, batch, augmentation, schedule length) is refused unless the user names it
  (``--allow_change``), e.g. ``train.num_epochs`` to extend a run. Allowed changes are recorded in
  ``config_changes.jsonl`` and ``config.json`` follows them.
- ``check_writable``: the workdir is a directory, or can be made one, and can be written.
- One process writes a workdir at a time: ``jaxssl.runs.workdir_lock``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Iterable

import ml_collections

from jaxssl.common.workdir import is_url

NEUTRAL = ("train.log_every", "train.checkpoint_every", "train.keep_checkpoints", "data.prefetch", "data.workers",
           "data.cache", "data.max_bad_images", "data.read_timeout_s", "eval.", "parallel.", "metrics.")


# Not a config field: the number of examples in the train split, recorded in every checkpoint. Naming it in
# --allow_change lets a run go on after its train split grew or shrank.
TRAIN_SIZE = "data.train_size"


class WorkdirError(ValueError):
  """The workdir holds another run, is in use, or cannot be written."""


def flat(tree: dict, prefix: str = "") -> dict[str, Any]:
  """{"section.field": value} of a nested dict (a config as JSON)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(flat(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = value
  return out


def config_changes(saved: dict, config: ml_collections.ConfigDict) -> dict[str, tuple[Any, Any]]:
  """{field: (saved value, new value)} for every field that differs and can change the result. A field the
  saved config lacks (added to the schema since the run was made) counts as its default, as ``load_config``
  reads it."""
  old = flat(saved)
  new = flat(json.loads(config.to_json_best_effort()))      # tuples as lists, as config.json holds them
  name = saved.get("method", {}).get("name") if isinstance(saved.get("method"), dict) else None
  if name:
    from jaxssl.schema import defaults

    try:
      schema = flat(json.loads(defaults.get_config(name).to_json_best_effort()))
    except (KeyError, ValueError):                          # a method this version does not know
      schema = {}
    old = {**{k: v for k, v in schema.items() if k not in old}, **old}
  changes = {}
  for field in sorted(set(old) | set(new)):
    if field.startswith(NEUTRAL) or field in NEUTRAL:
      continue
    if old.get(field, "<absent>") != new.get(field, "<absent>"):
      changes[field] = (old.get(field, "<absent>"), new.get(field, "<absent>"))
  return changes


def check_same_run(root, config: ml_collections.ConfigDict, allow: Iterable[str], workdir: str) -> dict:
  """Raises WorkdirError when ``root`` holds a run started with a config that differs from ``config`` in
  fields not named in ``allow``; returns the allowed changes (empty for a new workdir)."""
  known = flat(json.loads(config.to_json_best_effort()))
  path = root / "config.json"
  saved = None
  from jaxssl.runs.checkpoint import has_checkpoints

  # Only a run that saved something holds the workdir: one that failed before its first checkpoint (a NaN at
  # step 1) leaves an empty checkpoints/ and a config.json that a corrected rerun replaces.
  if has_checkpoints(root) or (root / "results.json").exists():
    if path.exists():
      try:
        saved = json.loads(path.read_text())
      except (OSError, ValueError) as e:
        raise WorkdirError(f"--workdir={workdir!r}: its config.json cannot be read ({e}); restore it or use a new "
                           "workdir") from None
    else:
      saved = _recorded_config(root)
  # A field of the saved run's schema that this config lacks (another method's) may be named too.
  named = set(known) | set(flat(saved) if isinstance(saved, dict) else {}) | {TRAIN_SIZE}
  unknown = [field for field in allow if field not in named]
  if unknown:
    raise WorkdirError(f"--allow_change={','.join(allow)}: {unknown[0]!r} is not a config field (e.g. "
                       "train.num_epochs)")
  if not isinstance(saved, dict):
    return {}
  changes = config_changes(saved, config)
  refused = {f: v for f, v in changes.items() if f not in set(allow)}
  if refused:
    shown = ", ".join(f"{f} ({old!r} -> {new!r})" for f, (old, new) in list(refused.items())[:6])
    more = f" and {len(refused) - 6} more" if len(refused) > 6 else ""
    raise WorkdirError(f"--workdir={workdir!r} holds a run started with another config: {shown}{more}; rerun "
                       f"with its config, pass --allow_change={','.join(refused)} to resume with the new values, "
                       "or use a new workdir")
  return changes


def _recorded_config(root) -> dict | None:
  """The config a workdir's run was started with, from results.json or the latest checkpoint's record (each
  carries it), for a workdir whose config.json is lost; None if neither does."""
  results = root / "results.json"
  try:
    if results.exists():
      return json.loads(results.read_text())["config"]
  except (OSError, ValueError, KeyError, TypeError):
    pass
  from jaxssl.runs.checkpoint import CheckpointError, Checkpointer, has_checkpoints

  if not has_checkpoints(root):
    return None
  checkpointer = Checkpointer(str(root), asynchronous=False)
  try:
    return checkpointer.restore_meta().get("config")
  except CheckpointError:
    return None
  finally:
    checkpointer.close()


def finished_results(root, total_steps: int) -> dict | None:
  """results.json's results when the workdir's run finished at least ``total_steps`` steps, else None."""
  path = root / "results.json"
  try:
    results = json.loads(path.read_text())["results"] if path.exists() else None
  except (OSError, ValueError, KeyError, TypeError):
    return None
  if not isinstance(results, dict) or int(results.get("steps", total_steps)) < total_steps:
    return None
  return results


def record_changes(root, changes: dict, step: int) -> None:
  """Appends the allowed changes to config_changes.jsonl (read, then written whole: object stores)."""
  path = root / "config_changes.jsonl"
  previous = path.read_text() if path.exists() else ""
  line = json.dumps({"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "changes": {f: {"from": old, "to": new} for f, (old, new) in changes.items()}})
  path.write_text(previous + line + "\n")


def check_writable(workdir: str) -> None:
  """A local workdir must be a directory, or creatable, and writable: one line now rather than a traceback at
  the first save."""
  if not workdir:
    raise WorkdirError("--workdir='': name a directory for the run")
  if is_url(workdir):
    return
  path = os.path.abspath(workdir)
  if os.path.exists(path) and not os.path.isdir(path):
    raise WorkdirError(f"--workdir={workdir!r} is a file, not a directory")
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
    raise WorkdirError(f"--workdir={workdir!r} cannot be written ({existing} is not a writable directory)")
