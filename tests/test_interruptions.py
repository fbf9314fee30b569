"""Clean edges of a run (in-process): Ctrl-C saves at the next step boundary and a second one stops at once;
SIGTERM during the final save or evaluation finishes the save; a torn metrics.jsonl line is dropped on resume;
results.json that cannot be written is one line; evaluation falls back past a damaged checkpoint."""

import json
import os
import signal

import pytest

from jaxssl import data, evaluate, train
from jaxssl.runs.run_identity import WorkdirError
from tiny import tiny_config


def _config(steps=6):
  config = tiny_config("simclr")
  config.train.num_steps, config.train.log_every, config.train.checkpoint_every = steps, 1, 2
  config.eval.knn_at_init, config.eval.online_probe = False, False
  return config


_NEXT = data.Pipeline.next


def _signal_at(monkeypatch, positions: dict[int, tuple]):
  """Raises the signals ``positions[p]`` in this process just before the pipeline hands out batch p."""
  original = _NEXT

  def next_with_signal(pipeline, *args, **kwargs):
    for signum in positions.get(pipeline.position, ()):
      signal.raise_signal(signum)
    return original(pipeline, *args, **kwargs)

  monkeypatch.setattr(data.Pipeline, "next", next_with_signal)


def _steps(workdir):
  return [json.loads(line)["step"] for line in open(os.path.join(workdir, "metrics.jsonl")) if '"loss"' in line]


@pytest.mark.slow
def test_ctrl_c_saves_at_the_next_step_and_a_second_one_stops_at_once(tmp_path, monkeypatch, capsys):
  workdir = str(tmp_path / "run")
  _signal_at(monkeypatch, {3: (signal.SIGINT,)})
  results = train.run(_config(), workdir)
  assert results["preempted"] and _steps(workdir) == [1, 2, 3, 4]
  out = capsys.readouterr()
  assert "Ctrl-C: saving a checkpoint at the next step boundary" in out.err
  assert "Ctrl-C: saved a checkpoint at step 4; run the same command again to resume" in out.out
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  assert not os.path.exists(os.path.join(workdir, "lock"))

  _signal_at(monkeypatch, {4: (signal.SIGINT, signal.SIGINT)})
  with pytest.raises(KeyboardInterrupt):
    train.run(_config(), workdir)
  assert not os.path.exists(os.path.join(workdir, "lock"))
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]

  # SIGTERM during the last step: the final checkpoint is finished, the evaluation left for the rerun.
  _signal_at(monkeypatch, {5: (signal.SIGTERM,)})
  with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
    f.write('{"step": 5, "kind": "tra')              # a crash in the middle of a write
  results = train.run(_config(), workdir)
  assert results["preempted"] and not os.path.exists(os.path.join(workdir, "results.json"))
  out = capsys.readouterr()
  assert "dropped 1 line(s) that are not JSON records" in out.err
  assert "SIGTERM: the final checkpoint (step 6) is saved; run the same command again for the final " in out.out
  assert "6" in os.listdir(os.path.join(workdir, "checkpoints"))
  assert not os.path.exists(os.path.join(workdir, "lock"))

  monkeypatch.undo()
  os.mkdir(os.path.join(workdir, "results.json"))     # cannot be replaced by a file
  with pytest.raises(WorkdirError, match=r"results.json could not be written \(IsADirectoryError: .*\); the final "
                                         r"checkpoint is saved"):
    train.run(_config(), workdir)
  os.rmdir(os.path.join(workdir, "results.json"))
  results = train.run(_config(), workdir)
  assert "knn_accuracy" in results and _steps(workdir) == [1, 2, 3, 4, 5, 6]
  assert "resuming from step 6" in capsys.readouterr().out

  # The newest checkpoint damaged (or rotated away mid-read): evaluate passes over it, and --step picks one.
  for name in os.listdir(os.path.join(workdir, "checkpoints", "6", "state")):
    path = os.path.join(workdir, "checkpoints", "6", "state", name)
    if os.path.isfile(path) and name != "files.json":
      open(path, "wb").close()
  assert evaluate.main(["--workdir", workdir, "--no_linear"]) == 0
  out = capsys.readouterr()
  assert "checkpoints/6 is damaged" in out.err and "trying the checkpoint before it" in out.err
  assert "simclr at step 4: kNN" in out.out
  assert evaluate.main(["--workdir", workdir, "--no_linear", "--step", "3"]) == 2
  assert "--step=3: " in (err := capsys.readouterr().err) and "has no checkpoint of that step (it has: 2, 4, 6)" in err

