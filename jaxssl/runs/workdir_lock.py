"""``WORKDIR/lock``: one process writes a run at a time, across hosts, requeues and hard kills.

The lock file is one JSON object, ``{"host", "pid", "job", "token", "since", "beat"}``:

- It is created atomically (``jaxssl.runs.lock_store``): locally a private file is hard-linked to ``lock`` (``link``
  fails if ``lock`` exists, so of two runs started at the same instant exactly one gets it, and a reader never
  sees a half-written lock); on ``gs://`` by an upload that Cloud Storage refuses if the object exists, with the
  heartbeat's rewrite and a takeover's delete conditional on the generation read. Other object stores have no
  such primitive: there the lock is written if absent and read back after a pause (best effort, said when taken).
- The holder rewrites ``beat`` (seconds since the epoch) every ``HEARTBEAT_S`` from a daemon thread. If it
  finds the file no longer names it (another run took over because this one stalled), it sets ``lost`` and the
  training loop stops before writing anything more.
- A lock is taken over, whatever host wrote it, when its holder is gone: on this host, its pid is dead; with the
  same scheduler job id (``SLURM_JOB_ID`` and the like: a requeue of the same job, on any node), at once; and
  otherwise once its heartbeat is older than ``STALE_S`` (a node that died or lost the mount). A lock file that
  is not a lock record (empty, ``null``, a list, garbage) is taken over once it is older than ``STALE_S`` too.
  Takeover removes the stale file only if it still holds what was judged (locally: renamed to a name of our own
  first, which succeeds for one process only; on ``gs://``: a delete conditional on its generation), so two
  takers cannot both win.

Clocks are compared across hosts (the heartbeat against the taker's clock): ``STALE_S`` is minutes, far above
the skew of NTP-synchronised nodes.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from jaxssl.runs import lock_store
from jaxssl.runs.run_identity import WorkdirError

HEARTBEAT_S = 30.0
STALE_S = 300.0
# The scheduler's id of this job, which a requeue keeps (SLURM, PBS, LSF, SGE); JAXSSL_JOB_ID overrides.
JOB_ID_VARIABLES = ("JAXSSL_JOB_ID", "SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")


class LockError(WorkdirError):
  """The workdir is in use by a live run (the message says by whom and since when)."""


def job_id() -> str | None:
  """This process's scheduler job id, or None outside a scheduler."""
  for name in JOB_ID_VARIABLES:
    if os.environ.get(name):
      return f"{name}={os.environ[name]}"
  return None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except (PermissionError, OverflowError, ValueError):
    return True
  return True


def _age(seconds_since_epoch, now: float) -> float:
  return now - float(seconds_since_epoch)


class WorkdirLock:
  """``acquire`` takes ``root/lock`` (raising LockError, one line, while a live run holds it) and starts the
  heartbeat; ``release`` stops it and removes the lock if it is still ours. ``note`` says what was taken over;
  ``lost`` is set (a sentence) when another run took the lock from this one."""

  def __init__(self, root, workdir: str, heartbeat_s: float | None = None):
    self.path, self.workdir = root / "lock", workdir
    self.store = lock_store.lock_file(self.path)
    self.heartbeat_s = HEARTBEAT_S if heartbeat_s is None else heartbeat_s
    self.token = uuid.uuid4().hex
    self.note = ""
    self.lost = ""
    self._stop = threading.Event()
    self._thread = None

  def _record(self, since: str | None = None) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "job": job_id(), "token": self.token,
            "since": since or time.strftime("%Y-%m-%dT%H:%M:%S"), "beat": time.time()}

  # -- judging the lock on disk --

  def _judge(self, raw: bytes, mtime: float) -> tuple[bool, str]:
    """(stale, why): whether the lock in ``raw`` may be taken over, and the words for the note or the error."""
    now = time.time()
    try:
      holder = json.loads(raw)
    except ValueError:
      holder = None
    if not isinstance(holder, dict) or not isinstance(holder.get("pid"), int):
      shown = " ".join(raw.decode("utf-8", "replace").split())[:40]
      if _age(mtime, now) > STALE_S:
        return True, f"a lock file that is not a lock record ({shown!r})"
      return False, (f"a lock file that is not a lock record ({shown!r}), written {_age(mtime, now):.0f} s ago; "
                     f"it is taken over once it is {STALE_S:.0f} s old")
    pid, host = holder["pid"], holder.get("host")
    who = f"pid {pid} on host {host!r}"
    if host == socket.gethostname():
      if pid == os.getpid() or not _alive(pid):
        return True, f"a stale lock of {who} (that process is gone)"
    if holder.get("job") is not None and holder.get("job") == job_id():
      return True, f"the lock of {who} (the same job {holder['job']}: a requeue)"
    beat = holder.get("beat")
    age = _age(beat, now) if isinstance(beat, (int, float)) else _age(mtime, now)
    if age > STALE_S:
      return True, f"a stale lock of {who} (no heartbeat for {age:.0f} s)"
    return False, (f"{who} since {holder.get('since')} (heartbeat {age:.0f} s ago; the lock is taken over after "
                   f"{STALE_S:.0f} s without one)")

  # -- taking, refreshing and releasing it --

  def acquire(self) -> "WorkdirLock":
    obstruction = self.store.obstruction()
    if obstruction:
      raise LockError(f"--workdir={self.workdir!r}: its lock file {self.path} is {obstruction}, not a jaxssl lock "
                      "(a run writes one there); remove it")
    for _ in range(5):
      if self.store.create(json.dumps(self._record()).encode()):
        return self._held()
      raw, mtime, version = self.store.read()
      if raw is None:
        continue                                  # released between our attempt and the read: try again
      if self._ours(raw):                         # our create landed but its answer was lost (a retried request)
        return self._held()
      stale, why = self._judge(raw, mtime)
      if not stale:
        raise LockError(f"--workdir={self.workdir!r} is in use by {why} (lock file {self.path}); wait for it to "
                        "finish, or delete the lock file if that run is gone")
      if self.store.remove(raw, version):
        self.note = f"took over {why}"
    raise LockError(f"--workdir={self.workdir!r}: its lock file {self.path} kept changing while this run tried "
                    "to take it; another run is starting there")

  def _held(self) -> "WorkdirLock":
    if not self.store.atomic:
      self.note = "; ".join(filter(None, [self.note, (
          f"the lock on {self.path} is best effort (this store has no atomic create-if-absent that jaxssl "
          "uses): do not start two runs on one workdir at once")]))
    self._start_heartbeat()
    return self

  def _ours(self, raw: bytes) -> bool:
    try:
      holder = json.loads(raw)
    except ValueError:
      return False
    return isinstance(holder, dict) and holder.get("token") == self.token

  def beat(self) -> None:
    """Refreshes the heartbeat, or sets ``lost`` if the lock no longer names this run."""
    raw, _, version = self.store.read()
    if raw is not None and self._ours(raw):
      if self.store.replace(json.dumps(self._record(json.loads(raw).get("since"))).encode(), version):
        return
      raw, _, _ = self.store.read()               # replaced between our read and our rewrite: by whom
    self._lose(raw)

  def _lose(self, raw: bytes | None) -> None:
    holder = "nobody (the lock file is gone)" if raw is None else raw.decode("utf-8", "replace")[:120]
    self.lost = (f"the lock of --workdir={self.workdir!r} was taken over by another run ({holder}), which "
                 f"judged this one gone; this run stops without writing more")
    self._stop.set()

  def check(self) -> None:
    """Raises WorkdirError (``lost``) unless the lock file names this run now: read afresh, so that a run does
    not write for up to a heartbeat after another took its lock. The run calls it before every write."""
    if not self.lost:
      raw, _, _ = self.store.read()
      if raw is None or not self._ours(raw):
        self._lose(raw)
    if self.lost:
      raise WorkdirError(self.lost)

  def _start_heartbeat(self) -> None:
    def loop():
      while not self._stop.wait(self.heartbeat_s):
        try:
          self.beat()
        except OSError:
          pass                                    # a transient error: the next beat tries again
    self._thread = threading.Thread(target=loop, name="jaxssl-workdir-lock", daemon=True)
    self._thread.start()

  def release(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
    try:
      raw, _, version = self.store.read()
      if raw is not None and self._ours(raw):
        self.store.remove(raw, version)
    except OSError:
      pass
