"""Where a run used to die, hang, lose work or mislead (issue 42), each now a clean stop, one line, or a run that
goes on: SIGTERM while the run is set up, during the kNN at initialisation and during the final evaluation;
unreadable and hanging images in the evaluation splits; a lock taken by another run mid-segment; a finished run
whose checkpoints are gone; a lock that is a directory."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

import helpers
from jaxssl import data, train
from jaxssl.engine import evaluation
from jaxssl.runs import workdir_lock
from jaxssl.runs.run_identity import WorkdirError
from tiny import tiny_config
from xla_test_flags import cpu_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.data.source=synthetic", "--config.data.synthetic_size=16", "--config.augment.size=16",
        "--config.train.batch_size=16", "--config.method.proj_hidden_dims=(32,)", "--config.method.proj_dim=16",
        "--config.eval.online_probe=False", "--config.eval.at_end=False"]

# jaxssl.main with SIGTERM sent to itself at a chosen point: (module, function) to wrap, from sys.argv[1].
SIGTERM_AT = """
import importlib, os, runpy, signal, sys
module, name = sys.argv[1].rsplit(".", 1)
owner = importlib.import_module(module)
original = getattr(owner, name)
def wrapped(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    return original(*args, **kwargs)
setattr(owner, name, wrapped)
sys.argv = ["jaxssl.main"] + sys.argv[2:]
runpy.run_module("jaxssl.main", run_name="__main__")
"""


def _main_with_sigterm_at(where, workdir, *args):
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-c", SIGTERM_AT, where, f"--workdir={workdir}", "--config=configs/simclr.py",
                         *TINY, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_sigterm_while_resuming_or_during_the_knn_at_initialisation_stops_cleanly(tmp_path):
  workdir = tmp_path / "run"
  # During the kNN at initialisation (its first read): stopped before step 1, nothing saved, the lock released.
  result = _main_with_sigterm_at("jaxssl.engine.evaluation.embed", workdir, "--config.train.num_steps=2")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "SIGTERM: stopped during the kNN at initialisation, before the first step of this segment; nothing was " \
         "trained, so there is nothing to save" in result.stdout
  assert not (workdir / "lock").exists() and not (workdir / "results.json").exists()
  assert not os.listdir(workdir / "checkpoints")
  # The same command trains; then, resumed to go on, SIGTERM right after "resuming" (while the step is built).
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-m", "jaxssl.main", f"--workdir={workdir}", "--config=configs/simclr.py",
                         *TINY, "--config.train.num_steps=2", "--config.eval.knn_at_init=False"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-2000:]
  os.remove(workdir / "results.json")             # as if it had been stopped before writing it
  result = _main_with_sigterm_at("jaxssl.segment.make_step", workdir, "--config.train.num_steps=4",
                                 "--allow_change=train.num_steps", "--config.eval.knn_at_init=False")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "resuming from step 2" in result.stdout
  assert "SIGTERM: stopped while the run was being set up, before the first step of this segment; the checkpoint " \
         "of step 2 it resumed from is as it was" in result.stdout
  assert sorted(os.listdir(workdir / "checkpoints")) == ["2"] and not (workdir / "lock").exists()


def _config(steps=4):
  config = tiny_config("simclr")
  config.train.num_steps, config.train.log_every, config.train.checkpoint_every = steps, 1, 2
  config.eval.knn_at_init, config.eval.online_probe = False, False
  return config


def test_sigterm_during_the_final_evaluation_leaves_it_to_the_next_run(tmp_path, monkeypatch, capsys):
  workdir = str(tmp_path / "run")
  original = evaluation.embed
  calls = []

  def embed_with_sigterm(*args, **kwargs):
    calls.append(1)
    if len(calls) == 1:
      signal.raise_signal(signal.SIGTERM)
    return original(*args, **kwargs)

  monkeypatch.setattr(evaluation, "embed", embed_with_sigterm)
  results = train.run(_config(), workdir)
  assert results["preempted"] and not os.path.exists(os.path.join(workdir, "results.json"))
  assert "SIGTERM: stopped during the final evaluation; the final checkpoint (step 4) is saved; run the same " \
         "command again for the final evaluation and results.json" in capsys.readouterr().out
  assert not os.path.exists(os.path.join(workdir, "lock"))
  monkeypatch.undo()
  results = train.run(_config(), workdir)
  assert "knn_accuracy" in results and os.path.exists(os.path.join(workdir, "results.json"))


def test_sigterm_while_the_first_batch_is_read_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
  original = data.Pipeline.local_batch

  def slow_first_batch(pipeline, position):
    if position == 0:
      threading.Event().wait(1.0)
    return original(pipeline, position)

  def sigterm_then_next(pipeline, *args, _next=data.Pipeline.next, **kwargs):
    if pipeline.position == 0:
      signal.raise_signal(signal.SIGTERM)
    return _next(pipeline, *args, **kwargs)

  monkeypatch.setattr(data.Pipeline, "local_batch", slow_first_batch)
  monkeypatch.setattr(data.Pipeline, "next", sigterm_then_next)
  results = train.run(_config(), str(tmp_path / "run"))
  assert results["preempted"]
  out = capsys.readouterr().out
  assert "SIGTERM: nothing was trained, so there is no checkpoint (the input pipeline was waiting on a read)" in out
  assert "checkpoint of step 0 is saved" not in out and not os.listdir(tmp_path / "run" / "checkpoints")


def test_a_run_whose_lock_is_taken_writes_nothing_more(tmp_path, monkeypatch):
  workdir = tmp_path / "run"
  original = data.Pipeline.next

  def next_then_taken(pipeline, *args, **kwargs):
    if pipeline.position == 3:                   # after step 3's records: another host takes the lock
      (workdir / "lock").write_text(json.dumps({"host": "node-b", "pid": 7, "job": None, "token": "theirs",
                                                "since": "now", "beat": 0}))
    return original(pipeline, *args, **kwargs)

  monkeypatch.setattr(data.Pipeline, "next", next_then_taken)
  config = _config(steps=8)
  config.train.checkpoint_every = 1
  with pytest.raises(WorkdirError, match=r"was taken over by another run \(.*node-b.*\), which judged this one "
                                         r"gone; this run stops without writing more"):
    train.run(config, str(workdir))
  steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert max(steps) == 3 and sorted(os.listdir(workdir / "checkpoints"), key=int)[-1] == "3"
  assert json.loads((workdir / "lock").read_text())["token"] == "theirs"     # theirs, left in place


def test_a_finished_run_whose_checkpoints_are_gone_is_not_trained_again(tmp_path, capsys):
  workdir = tmp_path / "run"
  train.run(_config(), str(workdir))
  before = {name: (workdir / name).read_text() for name in ("results.json", "metrics.jsonl", "config.json")}
  shutil.rmtree(workdir / "checkpoints")
  config = _config(steps=9)
  with pytest.raises(WorkdirError, match=r"holds a finished run \(4 steps, results.json\) whose checkpoints are gone: "
                                         r"it cannot go on to 9 steps"):
    train.run(config, str(workdir), allow_change=["train.num_steps"])
  assert {name: (workdir / name).read_text() for name in before} == before
  assert "config changes allowed on resume" not in capsys.readouterr().out
  assert not (workdir / "config_changes.jsonl").exists()


def test_a_lock_that_is_a_directory_is_named_as_such(tmp_path):
  (tmp_path / "run" / "lock").mkdir(parents=True)
  with pytest.raises(workdir_lock.LockError, match=r"its lock file .*/run/lock is a directory, not a jaxssl lock "
                                                   r"\(a run writes one there\); remove it"):
    train.run(_config(), str(tmp_path / "run"))


# ----------------------------------------------------------------------------------------------------------------
# The evaluation splits: unreadable images are substituted as in training, a hung read is bounded.


def _folder_config(root, **fields):
  """test_bad_images' folder run, read from the folder at every step (no cache), evaluated at the end."""
  from test_bad_images import _run_config

  return _run_config(root, **{"data__cache": False, "train__num_steps": 2, "eval__at_end": True, **fields})


@pytest.mark.slow
def test_unreadable_images_in_the_evaluation_splits_are_substituted(tmp_path, monkeypatch, capsys):
  root = helpers.jpeg_splits(tmp_path / "data", {"train": 16, "test": 8})
  test = data.FolderSource(str(root / "test"), size=32)
  train_split = data.FolderSource(str(root / "train"), size=32)
  with open(test.paths[0], "wb") as f:           # the first file of each split: the shape probe reads it
    f.write(b"\xff\xd8\xff")
  open(train_split.paths[0], "wb").close()
  open(test.paths[3], "wb").close()
  os.remove(test.paths[5])
  os.symlink(test.paths[5] + ".gone", test.paths[5])
  workdir = tmp_path / "run"
  results = train.run(_folder_config(root, eval__knn_at_init=True), str(workdir))
  assert results["steps"] == 2 and 0 <= results["knn_accuracy"] <= 1 and 0 <= results["knn_random_init"] <= 1
  listed = {json.loads(line)["file"] for line in (workdir / "bad_images.jsonl").read_text().splitlines()}
  assert {test.paths[0], test.paths[3], test.paths[5], train_split.paths[0]} <= listed


HUNG_EVALUATION = """
import sys
sys.path.insert(0, "tests")
import test_run_edges
from jaxssl import train
config = test_run_edges._folder_config(sys.argv[1], data__read_timeout_s=float(sys.argv[3]),
                                       eval__knn_at_init=False)
try:
  print(train.run(config, sys.argv[2]))
except Exception as e:
  print(f"error: {type(e).__name__}: {e}")
"""


@pytest.mark.slow
def test_a_hung_read_in_the_test_split_is_bounded_and_sigterm_stops_it(tmp_path):
  root = helpers.jpeg_splits(tmp_path / "data", {"train": 16, "test": 8})
  os.mkfifo(root / "test" / "class_001" / "zz_hangs.jpg")       # not the first file: the run trains first
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  run = lambda workdir, timeout_s: subprocess.Popen(  # noqa: E731
      [sys.executable, "-c", HUNG_EVALUATION, str(root), str(workdir), str(timeout_s)], cwd=ROOT, env=env,
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  bounded = run(tmp_path / "bounded", 3)
  out, err = bounded.communicate(timeout=300)
  assert "error: ReadTimeout: config.data.read_timeout_s=3: reading " in out and "of config.data.test_split='test' " \
         "gave nothing for 3 s" in out, (out, err[-2000:])
  assert (tmp_path / "bounded" / "checkpoints" / "2").is_dir() and not (tmp_path / "bounded" / "lock").exists()

  patient = run(tmp_path / "patient", 0)
  import time
  deadline = time.time() + 240
  while not (tmp_path / "patient" / "checkpoints" / "2").is_dir() and time.time() < deadline:
    time.sleep(0.5)
  time.sleep(3)                                   # the final evaluation is waiting on the FIFO
  patient.send_signal(signal.SIGTERM)
  out, err = patient.communicate(timeout=60)
  assert "SIGTERM: stopped during the final evaluation; the final checkpoint (step 2) is saved" in out, (
      out, err[-2000:])
  assert patient.returncode == 0 and not (tmp_path / "patient" / "lock").exists()


def test_after_a_nan_a_diverged_newest_checkpoint_is_named_and_an_earlier_one_offered(tmp_path, monkeypatch):
  """Steps 3 and 4 blow the weights up (finite), step 5 makes them NaN: resuming from checkpoint 4 with a lower
  rate would fail again. The error says so and how to resume from step 2, whose weights had not grown; done
  that way, the run goes on from step 2."""
  import jax.numpy as jnp

  from jaxssl.ops import optim

  config = _config(steps=6)
  config.train.checkpoint_every, config.train.keep_checkpoints = 1, 3
  config.optim.name, config.optim.warmup_steps = "sgd", 0
  schedule = optim.learning_rate_schedule

  def exploding(*args, **kwargs):
    normal = schedule(*args, **kwargs)
    return lambda count: jnp.where(count >= 4, jnp.nan, jnp.where(count >= 2, 1e5, normal(count)))

  monkeypatch.setattr(optim, "learning_rate_schedule", exploding)
  workdir = tmp_path / "run"
  with pytest.raises(train.TrainingError) as raised:
    train.run(config, str(workdir))
  message = str(raised.value)
  assert message.startswith("step 5: not finite: ")
  folder = workdir / "checkpoints"
  assert "; but the newest checkpoint (step 4) had already diverged (its largest parameter is " in message
  assert message.endswith(f"; step 2 had not: to resume from it, move the newer ones aside (mv {folder}/4 "
                          f"{folder}/diverged-4; mv {folder}/3 {folder}/diverged-3)"), message
  for step in (4, 3):
    os.rename(folder / str(step), folder / f"diverged-{step}")
  monkeypatch.setattr(optim, "learning_rate_schedule", schedule)
  results = train.run(config, str(workdir))
  assert results["steps"] == 6 and np.isfinite(results["final_loss"])


def test_a_run_that_failed_before_its_first_checkpoint_accepts_a_corrected_config(tmp_path, monkeypatch):
  import jax.numpy as jnp

  from jaxssl.ops import optim

  schedule = optim.learning_rate_schedule
  monkeypatch.setattr(optim, "learning_rate_schedule", lambda *a, **k: (lambda count: jnp.nan * count))
  config = _config()
  with pytest.raises(train.TrainingError, match=r"^step 1: not finite"):
    train.run(config, str(tmp_path / "run"))
  assert (tmp_path / "run" / "config.json").exists() and not os.listdir(tmp_path / "run" / "checkpoints")
  monkeypatch.setattr(optim, "learning_rate_schedule", schedule)
  config.optim.base_lr = 0.1                       # another config: nothing was saved for it to contradict
  results = train.run(config, str(tmp_path / "run"))
  assert results["steps"] == 4
  assert json.loads((tmp_path / "run" / "config.json").read_text())["optim"]["base_lr"] == 0.1


def test_epochs_that_round_to_no_step_are_refused_before_the_workdir_exists(tmp_path):
  from jaxssl.common.config_checks import ConfigError

  config = _config()
  config.train.num_steps, config.train.num_epochs = -1, 0.01     # 512 examples at batch 16: 0.32 of a step
  with pytest.raises(ConfigError, match=r"^config.train.num_epochs=0.01: is less than one step of 16 of the 512 "
                                        r"training examples; train for at least 0.0312 epochs, or set "
                                        r"train.num_steps$"):
    train.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
