"""The four operations ``jaxssl.runs.workdir_lock`` needs on its lock file, made atomic where the storage allows.

- ``create(data)``: write ``data`` only if there is no lock file; whether it was written.
- ``read()``: ``(data, written_at, version)`` of the current file, or ``(None, None, None)`` if there is none.
- ``replace(data, version)``: rewrite the file only if it is still at ``version`` (the heartbeat).
- ``remove(data, version)``: delete the file only if it still holds what was read (a takeover).

Three stores:

- ``LocalLockFile`` (a directory, NFS included): ``link`` of a private file creates, ``rename`` to a private name
  removes, ``os.replace`` rewrites; each is one atomic system call.
- ``GcsLockFile`` (``gs://`` with gcsfs): Cloud Storage's generation preconditions. Create is an upload with
  ``ifGenerationMatch=0`` (refused with 412 if the object exists), rewrite and delete carry
  ``ifGenerationMatch=<the generation read>``, so a run that judged a lock stale cannot delete or overwrite the
  lock another run has just written (https://cloud.google.com/storage/docs/request-preconditions).
- ``BestEffortLockFile`` (other object stores, or ``gs://`` without gcsfs): write if absent and read back after a
  pause; two runs started within that pause can both see their own record. ``atomic`` is False and the lock says
  so when it is taken.
"""

from __future__ import annotations

import datetime
import os
import time
from typing import Any

from jaxssl.common.workdir import is_url

BEST_EFFORT_PAUSE_S = 1.0


class LocalLockFile:
  atomic = True

  def __init__(self, path: str):
    self.path = str(path)

  def obstruction(self) -> str | None:
    """What stands where the lock file goes if it is not a file (a directory), else None."""
    if os.path.isdir(self.path):
      return "a directory"
    if os.path.lexists(self.path) and not os.path.exists(self.path):
      return "a broken symbolic link"
    if os.path.exists(self.path) and not os.path.isfile(self.path):
      return "not a regular file"
    return None

  def read(self) -> tuple[bytes | None, float | None, Any]:
    try:
      with open(self.path, "rb") as f:
        return f.read(), os.fstat(f.fileno()).st_mtime, None
    except OSError:                               # absent (released), or unreadable: no lock to judge
      return None, None, None

  def _private(self, tag: str) -> str:
    return f"{self.path}.{tag}.{os.getpid()}.{time.monotonic_ns()}"

  def create(self, data: bytes) -> bool:
    private = self._private("new")
    with open(private, "wb") as f:
      f.write(data)
    try:
      os.link(private, self.path)                 # fails if the lock exists: of two creators, one wins
      return True
    except FileExistsError:
      return False
    finally:
      os.unlink(private)

  def replace(self, data: bytes, version: Any) -> bool:
    private = self._private("beat")
    with open(private, "wb") as f:
      f.write(data)
    os.replace(private, self.path)                # a reader sees the old record or the new one, never half
    return True

  def remove(self, data: bytes, version: Any) -> bool:
    moved = self._private("stale")
    try:
      os.rename(self.path, moved)                 # of two takers, one moves the file
    except FileNotFoundError:
      return False
    with open(moved, "rb") as f:
      taken = f.read()
    if taken != data:                             # another taker's fresh lock: put it back
      try:
        os.link(moved, self.path)
      except FileExistsError:
        pass
      os.unlink(moved)
      return False
    os.unlink(moved)
    return True


class GcsLockFile:
  atomic = True

  def obstruction(self) -> str | None:
    return None                                   # an object store has no directories in the way of an object

  def __init__(self, url: str):
    import gcsfs

    # version_aware: "path#generation" reads exactly that generation (404 once it is replaced).
    self.fs = gcsfs.GCSFileSystem(version_aware=True, skip_instance_cache=True)
    self.bucket, self.key, _ = self.fs.split_path(url)

  @property
  def _object(self) -> str:
    return f"{self.bucket}/{self.key}"

  def read(self) -> tuple[bytes | None, float | None, Any]:
    self.fs.invalidate_cache()
    try:
      info = self.fs.info(self._object)
      generation = info["generation"]
      data = self.fs.cat_file(f"{self._object}#{generation}")
    except FileNotFoundError:                     # absent, or replaced between the two requests
      return None, None, None
    updated = info.get("updated")
    written_at = (datetime.datetime.fromisoformat(updated.replace("Z", "+00:00")).timestamp()
                  if isinstance(updated, str) else time.time())
    return data, written_at, generation

  def create(self, data: bytes) -> bool:
    try:
      self.fs.pipe_file(self._object, data, mode="create")          # ifGenerationMatch=0
      return True
    except FileExistsError:                       # 412: the object exists
      return False

  def replace(self, data: bytes, version: Any) -> bool:
    try:
      self.fs.call("POST", f"{self._api_root}/upload/storage/v1/b/{self.bucket}/o", uploadType="media",
                   name=self.key, ifGenerationMatch=str(version), data=data, json_out=True,
                   headers={"Content-Type": "application/json"})
      return True
    except (FileExistsError, FileNotFoundError):  # 412 / 404: no longer the generation we read
      return False

  def remove(self, data: bytes, version: Any) -> bool:
    try:
      self.fs.call("DELETE", "b/{}/o/{}", self.bucket, self.key, ifGenerationMatch=str(version))
      return True
    except (FileExistsError, FileNotFoundError):
      return False

  @property
  def _api_root(self) -> str:
    # gcsfs keeps the endpoint (the emulator's under STORAGE_EMULATOR_HOST) as _location; uploads are not
    # under its JSON API prefix, so they need the root.
    return getattr(self.fs, "_location", "https://storage.googleapis.com")


class BestEffortLockFile:
  atomic = False

  def obstruction(self) -> str | None:
    return None                                   # an object store has no directories in the way of an object

  def __init__(self, path):
    self.path = path                              # an etils.epath.Path

  def read(self) -> tuple[bytes | None, float | None, Any]:
    try:
      return self.path.read_bytes(), time.time(), None   # no modification time through epath
    except OSError:
      return None, None, None

  def create(self, data: bytes) -> bool:
    if self.path.exists():
      return False
    self.path.write_bytes(data)
    time.sleep(BEST_EFFORT_PAUSE_S)               # a concurrent writer's record lands in this window
    current, _, _ = self.read()
    return current == data

  def replace(self, data: bytes, version: Any) -> bool:
    self.path.write_bytes(data)
    return True

  def remove(self, data: bytes, version: Any) -> bool:
    current, _, _ = self.read()
    if current != data:
      return False
    self.path.unlink(missing_ok=True)
    return True


def lock_file(path) -> LocalLockFile | GcsLockFile | BestEffortLockFile:
  """The store for the lock file at ``path`` (an etils.epath.Path, local or a URL)."""
  text = str(path)
  if not is_url(text):
    return LocalLockFile(text)
  if text.startswith("gs://"):
    try:
      return GcsLockFile(text)
    except ImportError:
      pass
  return BestEffortLockFile(path)
