"""``python -m jaxssl.evaluate`` and ``python -m jaxssl.plot`` on a saved run: bad arguments, a JAX backend that
cannot start and a workdir that refuses their output are one line and exit code 2, as for ``jaxssl.main``; a
training that rotates checkpoints away while they are read does not make them give up."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxssl import evaluate, plot, train
from jaxssl.runs import restore
from tiny import tiny_config
from xla_test_flags import cpu_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  """A finished tiny run with a checkpoint after each of its 3 steps, the last 2 kept."""
  config = tiny_config("simclr")
  config.train.checkpoint_every, config.train.keep_checkpoints = 1, 2
  config.eval.knn_at_init, config.eval.online_probe = False, False
  workdir = tmp_path_factory.mktemp("finished") / "run"
  train.run(config, str(workdir))
  return workdir


def _command(module, *args, **env):
  environment = {**os.environ, "XLA_FLAGS": cpu_flags(8), "JAX_PLATFORMS": "cpu", **env}
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=environment, capture_output=True,
                        text=True, timeout=600)


def _one_error(result) -> str:
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
  return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("module,args,message", [
    ("jaxssl.evaluate", ["--step", "abc"], "error: argument --step: 'abc' is not an integer"),
    ("jaxssl.evaluate", ["--nosuch"], "error: unrecognized arguments: --nosuch"),
    ("jaxssl.evaluate", [], "error: the following arguments are required: --workdir"),
    ("jaxssl.evaluate", ["extra"], "error: unrecognized arguments: extra"),
    ("jaxssl.evaluate", ["--linear_lr", "inf"], "error: argument --linear_lr: inf must be a finite number above 0"),
    ("jaxssl.evaluate", ["--linear_lr=nan"], "error: argument --linear_lr: nan must be a finite number above 0"),
    ("jaxssl.evaluate", ["--linear_epochs=0"], "error: argument --linear_epochs: 0 must be positive"),
    ("jaxssl.plot", ["--points", "0"], "error: argument --points: 0 must be positive"),
    ("jaxssl.plot", ["--points=-5"], "error: argument --points: -5 must be positive"),
    ("jaxssl.plot", ["--step=abc"], "error: argument --step: 'abc' is not an integer"),
    ("jaxssl.plot", ["--workdir"], "error: argument --workdir: expected one argument"),
])
def test_bad_arguments_are_one_line(tmp_path, module, args, message):
  workdir = [] if not args or args == ["--workdir"] else [f"--workdir={tmp_path}"]
  assert _one_error(_command(module, *workdir, *args)) == message


@pytest.mark.slow
@pytest.mark.parametrize("module", ["jaxssl.main", "jaxssl.finetune", "jaxssl.evaluate", "jaxssl.plot"])
def test_a_jax_backend_that_cannot_start_is_one_line(tmp_path, module):
  args = [f"--workdir={tmp_path / 'run'}"]
  if module in ("jaxssl.main", "jaxssl.finetune"):
    args.append("--config=configs/simclr.py" if module == "jaxssl.main" else "--config=configs/finetune.py")
  line = _one_error(_command(module, *args, JAX_PLATFORMS="nosuchplatform"))
  assert line.startswith("error: JAX_PLATFORMS='nosuchplatform': Unable to initialize backend 'nosuchplatform'")
  assert not (tmp_path / "run").exists()


def test_evaluate_says_in_one_line_that_it_cannot_write_its_scores(finished, capsys):
  (finished / "eval.json").mkdir()                    # in the way of the file, as a read-only workdir would be
  try:
    assert evaluate.main([f"--workdir={finished}", "--no_linear"]) == 2
  finally:
    (finished / "eval.json").rmdir()
  out, err = capsys.readouterr()
  assert "simclr at step 3: kNN" in out
  assert [line for line in err.splitlines() if not line.startswith("evaluation: ")] == [f"error: {finished}/eval.json could not be written (IsADirectoryError: Is a "
                                      "directory); the scores above are not saved"]


@pytest.mark.slow
def test_plot_says_in_one_line_that_it_cannot_write_its_pictures(finished, capsys):
  (finished / "plots").write_text("in the way")
  try:
    assert plot.main([f"--workdir={finished}", "--points=40"]) == 2
  finally:
    (finished / "plots").unlink()
  lines = capsys.readouterr().err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith(f"error: {finished}/plots could not be written (FileExistsError"), lines


def test_a_checkpoint_rotated_away_while_it_is_read_is_passed_over(finished, tmp_path, monkeypatch, capsys):
  """A training still saving every step with 2 kept: while checkpoint 3 is read, it saves 4 and 5 and removes 2 and
  3. The listing read at the start names none that is left; the one read again names 4 and 5."""
  run = tmp_path / "run"
  shutil.copytree(finished, run)
  checkpoints = run / "checkpoints"
  real = restore.Checkpointer.restore
  calls = []

  def rotating(self, abstract, step=None):
    calls.append(step)
    if len(calls) == 1:
      for new in (4, 5):
        shutil.copytree(checkpoints / "3", checkpoints / str(new))
      for old in (2, 3):
        shutil.rmtree(checkpoints / str(old))
    return real(self, abstract, step)

  monkeypatch.setattr(restore.Checkpointer, "restore", rotating)
  loaded = restore.load_run(str(run))
  assert calls == [3, 5] and int(loaded.state.step) == 3        # step 5's folder holds step 3's state
  assert "no checkpoint can be read" not in capsys.readouterr().err
  np.testing.assert_array_equal(np.asarray(loaded.state.step), 3)
