"""A workdir keeps its run: another config is refused (unless named in allow_change), a finished run is not
trained or evaluated again, a second live run is locked out, a stale lock is taken over (in-process)."""

import json
import os
import subprocess
import sys

import pytest

from jaxssl import train
from jaxssl.runs.run_identity import WorkdirError, config_changes
from tiny import tiny_config


def _config(steps=2):
  config = tiny_config("simclr")
  config.train.num_steps, config.train.log_every = steps, 1
  config.eval.knn_at_init, config.eval.online_probe = False, False
  return config


def _steps(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f if '"loss"' in line]


@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
def test_another_config_is_refused_extending_is_allowed_and_a_finished_run_is_left_alone(tmp_path, capsys):
  workdir = str(tmp_path / "run")
  first = train.run(_config(), workdir)
  config_json = open(os.path.join(workdir, "config.json")).read()
  metrics = open(os.path.join(workdir, "metrics.jsonl")).read()

  changed = _config()
  changed.optim.base_lr, changed.seed = 0.6, 1
  with pytest.raises(WorkdirError, match=r"another config: optim.base_lr \(0.3 -> 0.6\), seed \(0 -> 1\); "
                                         r"rerun with its config, pass --allow_change=optim.base_lr,seed"):
    train.run(changed, workdir)
  assert open(os.path.join(workdir, "config.json")).read() == config_json

  again = train.run(_config(), workdir)                     # finished: results as they were, nothing appended
  assert again == json.loads(json.dumps(first))
  assert "is finished (step 2 of 2): " in capsys.readouterr().out
  assert open(os.path.join(workdir, "metrics.jsonl")).read() == metrics

  with pytest.raises(WorkdirError, match=r"train.num_steps \(2 -> 3\)"):
    train.run(_config(steps=3), workdir)
  with pytest.raises(WorkdirError, match=r"--allow_change=train.num_step: 'train.num_step' is not a config field"):
    train.run(_config(steps=3), workdir, allow_change=["train.num_step"])
  extended = train.run(_config(steps=3), workdir, allow_change=["train.num_steps"])
  assert extended["steps"] == 3 and _steps(workdir) == [1, 2, 3]
  record = json.loads(open(os.path.join(workdir, "config_changes.jsonl")).read())
  assert record["step"] == 2 and record["changes"] == {"train.num_steps": {"from": 2, "to": 3}}
  assert json.load(open(os.path.join(workdir, "config.json")))["train"]["num_steps"] == 3
  assert not os.path.exists(os.path.join(workdir, "lock"))  # released


def test_changes_that_cannot_alter_training_are_not_differences():
  saved = json.loads(_config().to_json_best_effort())
  config = _config()
  config.train.log_every, config.eval.knn_k, config.data.prefetch = 5, 20, 0
  assert config_changes(saved, config) == {}
  config.method.name = "supcon"
  assert config_changes(saved, config) == {"method.name": ("simclr", "supcon")}


def test_a_field_added_to_the_schema_since_the_run_was_made_is_its_default():
  saved = json.loads(_config().to_json_best_effort())
  del saved["model"]["num_registers"], saved["model"]["mlp"]           # a config.json from before these fields
  config = _config()
  assert config_changes(saved, config) == {}
  config.model.num_registers = 4
  assert config_changes(saved, config) == {"model.num_registers": (0, 4)}


def test_a_live_lock_refuses_a_second_run_and_a_stale_one_is_taken_over(tmp_path, capsys):
  import socket

  workdir = tmp_path / "run"
  workdir.mkdir()
  live = os.getppid()                                       # a process that is alive, and not this one
  (workdir / "lock").write_text(json.dumps({"host": socket.gethostname(), "pid": live, "since": "earlier"}))
  with pytest.raises(WorkdirError, match=rf"is in use by pid {live} on host .* delete the lock file"):
    train.run(_config(), str(workdir))
  assert not (workdir / "checkpoints").exists()

  gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                        text=True).stdout.strip()
  (workdir / "lock").write_text(json.dumps({"host": socket.gethostname(), "pid": int(gone), "since": "earlier"}))
  train.run(_config(), str(workdir))
  assert f"took over a stale lock of pid {gone}" in capsys.readouterr().out
  assert not (workdir / "lock").exists()


@pytest.mark.parametrize("make,message", [
    (lambda p: "", r"--workdir='': name a directory"),
    (lambda p: (p / "file").write_text("x") and str(p / "file"), r"is a file, not a directory"),
])
def test_unusable_workdirs_are_refused_up_front(tmp_path, make, message):
  with pytest.raises(WorkdirError, match=message):
    train.run(_config(), make(tmp_path))


@pytest.mark.parametrize("text", ["", '{"method": {"na', "[]"])
def test_evaluate_on_a_damaged_config_json_is_one_line(tmp_path, capsys, text):
  from jaxssl import evaluate

  (tmp_path / "config.json").write_text(text)
  assert evaluate.main(["--workdir", str(tmp_path)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith(f"error: --workdir='{tmp_path}': its config.json is damaged (")


@pytest.mark.slow
def test_identity_holds_without_config_json_or_checkpoints_and_across_a_changed_train_split(tmp_path, capsys):
  import shutil

  from jaxssl import data

  workdir = tmp_path / "run"
  train.run(_config(), str(workdir))
  metrics = (workdir / "metrics.jsonl").read_text()
  shutil.rmtree(workdir / "checkpoints")          # a finished run is known by its results.json
  train.run(_config(), str(workdir))
  assert "is finished (step 2 of 2)" in capsys.readouterr().out
  assert (workdir / "metrics.jsonl").read_text() == metrics
  (workdir / "config.json").unlink()
  changed = _config()
  changed.optim.base_lr = 0.6
  with pytest.raises(WorkdirError, match=r"another config: optim.base_lr \(0.3 -> 0.6\)"):
    train.run(changed, str(workdir))

  # Checkpoints but neither config.json nor results.json: the checkpoint's record carries the config.
  other = tmp_path / "other"
  config = _config(steps=3)
  source = data.synthetic(64, size=16)
  dataset = data.Dataset(source, source, data.synthetic(16, size=16, seed=1), 10)
  train.run(config, str(other), dataset=dataset)
  for name in ("config.json", "results.json"):
    (other / name).unlink()
  changed = _config(steps=3)
  changed.optim.base_lr = 0.6
  with pytest.raises(WorkdirError, match=r"another config: optim.base_lr \(0.3 -> 0.6\)"):
    train.run(changed, str(other), dataset=dataset)

  grown = data.synthetic(80, size=16)
  bigger = data.Dataset(grown, grown, dataset.test, 10)
  with pytest.raises(WorkdirError, match=r"config.data.train_split='train' has 80 examples, but the run in "
                                         r".* was trained on 64 .*--allow_change=data.train_size"):
    train.run(config, str(other), dataset=bigger)
  results = train.run(config, str(other), dataset=bigger, allow_change=["data.train_size"])
  assert results["steps"] == 3 and (other / "config.json").exists()

