"""WORKDIR/lock across hosts and requeues: exactly one of two racing runs gets it; a stale lock from another host,
a lock of the same scheduler job and a malformed lock are taken over; a run whose lock was taken notices."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from etils import epath
from jaxssl.runs.workdir_lock import LockError, WorkdirLock


def _lock(tmp_path, **kwargs) -> WorkdirLock:
  return WorkdirLock(epath.Path(tmp_path), str(tmp_path), **kwargs)


def _write(tmp_path, record) -> None:
  (tmp_path / "lock").write_text(record if isinstance(record, str) else json.dumps(record))


_RACER = """
import sys, time
from etils import epath
from jaxssl.runs.workdir_lock import LockError, WorkdirLock
workdir, start_at = sys.argv[1], float(sys.argv[2])
lock = WorkdirLock(epath.Path(workdir), workdir, heartbeat_s=60)
lock.store.read()                  # set up before the start (an object store's client connects), as in a run
while time.time() < start_at:      # every racer leaves this loop within microseconds of the others
  pass
try:
  lock.acquire()
  print("acquired", flush=True)
  time.sleep(1.0)                  # held while the others try
except LockError:
  print("refused", flush=True)
"""


def race_for_the_lock(workdir: str, start_in_s: float, racers: int = 4) -> list[str]:
  """Starts ``racers`` processes that all try to take ``workdir``'s lock at one instant, ``start_in_s`` from now
  (time enough for each to import and set up); their answers, sorted ("acquired" before "refused")."""
  start_at = time.time() + start_in_s
  processes = [subprocess.Popen([sys.executable, "-c", _RACER, workdir, str(start_at)], stdout=subprocess.PIPE,
                                text=True) for _ in range(racers)]
  return sorted(process.communicate(timeout=start_in_s + 60)[0].strip() for process in processes)


def test_of_runs_started_at_the_same_instant_exactly_one_gets_the_lock(tmp_path):
  for trial in range(3):
    directory = tmp_path / f"trial{trial}"
    directory.mkdir()
    results = race_for_the_lock(str(directory), start_in_s=4)
    assert results == ["acquired", "refused", "refused", "refused"], (trial, results)


def test_a_live_lock_of_another_host_is_refused_until_its_heartbeat_is_stale(tmp_path, monkeypatch):
  record = {"host": "node-a", "pid": 4242, "job": None, "token": "x", "since": "earlier", "beat": time.time() - 60}
  _write(tmp_path, record)
  with pytest.raises(LockError, match=r"in use by pid 4242 on host 'node-a' since earlier \(heartbeat 6\d s ago; "
                                      r"the lock is taken over after 300 s"):
    _lock(tmp_path).acquire()

  _write(tmp_path, {**record, "beat": time.time() - 301})
  lock = _lock(tmp_path).acquire()
  assert lock.note == "took over a stale lock of pid 4242 on host 'node-a' (no heartbeat for 301 s)"
  assert json.loads((tmp_path / "lock").read_text())["host"] == socket.gethostname()
  lock.release()
  assert not (tmp_path / "lock").exists()


def test_a_requeue_of_the_same_job_on_another_node_takes_the_lock_at_once(tmp_path, monkeypatch):
  monkeypatch.setenv("SLURM_JOB_ID", "777")
  for name in ("JAXSSL_JOB_ID",):
    monkeypatch.delenv(name, raising=False)
  _write(tmp_path, {"host": "node-a", "pid": 1, "job": "SLURM_JOB_ID=777", "token": "x", "since": "earlier",
                    "beat": time.time()})
  lock = _lock(tmp_path).acquire()
  assert "the same job SLURM_JOB_ID=777: a requeue" in lock.note
  lock.release()

  _write(tmp_path, {"host": "node-a", "pid": 1, "job": "SLURM_JOB_ID=778", "token": "x", "since": "earlier",
                    "beat": time.time()})
  with pytest.raises(LockError, match="in use by pid 1 on host 'node-a'"):
    _lock(tmp_path).acquire()


@pytest.mark.parametrize("content", ["null", "[1, 2]", "garbage{", ""])
def test_a_malformed_lock_is_one_line_and_taken_over_once_old(tmp_path, content):
  _write(tmp_path, content)
  with pytest.raises(LockError, match=r"a lock file that is not a lock record .*written 0 s ago; it is taken over "
                                      r"once it is 300 s old"):
    _lock(tmp_path).acquire()
  old = time.time() - 400
  os.utime(tmp_path / "lock", (old, old))
  lock = _lock(tmp_path).acquire()
  assert lock.note.startswith("took over a lock file that is not a lock record")
  lock.release()


def test_the_heartbeat_refreshes_the_lock_and_a_taken_lock_is_noticed(tmp_path):
  lock = _lock(tmp_path, heartbeat_s=0.05).acquire()
  first = json.loads((tmp_path / "lock").read_text())
  time.sleep(0.3)
  later = json.loads((tmp_path / "lock").read_text())
  assert later["beat"] > first["beat"] and later["since"] == first["since"] and not lock.lost

  _write(tmp_path, {**later, "host": "node-b", "token": "theirs"})   # taken over by a run that judged us gone
  time.sleep(0.3)
  assert "was taken over by another run" in lock.lost
  lock.release()
  assert json.loads((tmp_path / "lock").read_text())["host"] == "node-b"   # theirs is left alone
