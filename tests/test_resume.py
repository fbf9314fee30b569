"""Checkpoints: exact resume after SIGKILL, clean exit on SIGTERM, the NaN guard, mismatched checkpoints."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxssl.runs.checkpoint import Checkpointer
from xla_test_flags import cpu_flags

pytestmark = pytest.mark.slow             # subprocesses and whole runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 8
ARGS = ["--config=configs/simclr.py", "--config.data.source=synthetic", "--config.data.synthetic_size=16",
        "--config.augment.size=16", "--config.train.batch_size=16", "--config.method.proj_hidden_dims=(32,)",
        "--config.method.proj_dim=16", f"--config.train.num_steps={STEPS}", "--config.train.checkpoint_every=1",
        "--config.train.keep_checkpoints=2", "--config.eval.knn_at_init=False", "--config.eval.at_end=False",
        "--config.train.log_every=1"]


def _command(workdir, *extra):
  return [sys.executable, "-m", "jaxssl.main", f"--workdir={workdir}", *ARGS, *extra]


def _env():
  # Two devices: the collectives are exercised, and each process compiles faster than with eight.
  return dict(os.environ, XLA_FLAGS=cpu_flags(2), JAX_PLATFORMS="cpu")


def _run(workdir, *extra):
  result = subprocess.run(_command(workdir, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _start_and_signal(workdir, sig, after_step, *extra):
  """Starts a run and sends ``sig`` once checkpoint ``after_step`` exists; returns the finished process."""
  process = subprocess.Popen(_command(workdir, *extra), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  checkpoint = os.path.join(workdir, "checkpoints", str(after_step))
  deadline = time.time() + 600
  while not os.path.isdir(checkpoint) and process.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  process.send_signal(sig)
  out, err = process.communicate(timeout=600)
  return process.returncode, out, err


def jpeg_folder_args(root, images=48, workers=2):
  """Overrides that train on a generated JPEG folder (ImageNet-like shapes, 40-64 px) cropped on the host by
  ``workers`` threads: with batch 16, three steps per epoch."""
  import helpers

  helpers.jpeg_splits(root, {"train": images, "test": 8})
  return ["--config.data.source=folder", f"--config.data.data_dir={root}", "--config.data.image_size=24",
          "--config.data.mean=(0.5, 0.5, 0.5)", "--config.data.std=(0.25, 0.25, 0.25)",
          f"--config.data.workers={workers}"]


def _final_state(workdir):
  path = os.path.join(workdir, "checkpoints", str(STEPS), "state")
  return ocp.StandardCheckpointer().restore(path)


def _assert_identical(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b) > 0
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_sigterm_then_sigkill_then_resume_ends_bit_identical_and_mismatch_is_refused(tmp_path):
  reference = tmp_path / "reference"
  _run(reference)

  # A config with another model is refused in one line (the workdir's run has another config) and the
  # checkpoints stay as they were (the checkpoint-level "does not fit": test_checkpoint_damage.py).
  before = sorted(os.listdir(reference / "checkpoints"))
  result = subprocess.run(_command(reference, "--config.method.proj_dim=8"), cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "holds a run started with another config:" in errors[0], result.stderr[-2000:]
  assert "method.proj_dim (16 -> 8)" in errors[0]
  assert "Traceback" not in result.stderr
  assert sorted(os.listdir(reference / "checkpoints")) == before

  # Preempted with SIGTERM: a checkpoint at the next step boundary and a clean exit.
  run = tmp_path / "interrupted"
  code, out, err = _start_and_signal(run, signal.SIGTERM, after_step=2)
  assert code == 0, err[-3000:]
  assert "SIGTERM: saved a checkpoint at step" in out
  assert not os.path.isdir(run / "checkpoints" / str(STEPS))
  # Resumed, then killed outright at another step; then resumed to the end.
  code, out, _ = _start_and_signal(run, signal.SIGKILL, after_step=5)
  assert code == -signal.SIGKILL and "resuming from step" in out
  assert not os.path.isdir(run / "checkpoints" / str(STEPS))
  checkpointer = Checkpointer(str(run))
  before_last_segment = checkpointer.restore_meta()["results"]["train_seconds"]
  checkpointer.close()
  assert "resuming from step" in _run(run).stdout
  _assert_identical(_final_state(reference), _final_state(run))
  # Training time adds up over the segments instead of restarting with each.
  with open(run / "results.json") as f:
    assert json.load(f)["results"]["train_seconds"] > before_last_segment > 0


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
  from jaxssl import train
  from jaxssl.engine import train_step
  from jaxssl.runs import checkpoint
  from tiny import tiny_config

  config = tiny_config("vicreg")
  config.train.num_steps, config.train.checkpoint_every, config.eval.knn_at_init = 4, 1, False
  config.optim.name, config.optim.base_lr, config.optim.warmup_steps = "sgd", 1e30, 0   # diverges at step 2
  with pytest.raises(train.TrainingError, match="step 2: not finite: loss "):
    train.run(config, str(tmp_path))
  checkpointer = checkpoint.Checkpointer(str(tmp_path))
  assert checkpointer.latest_step() == 1
  trainer = train_step.build(config, 4, num_classes=10)
  state, meta = checkpointer.restore(train_step.init_state(trainer, jax.random.key(0), 1))
  assert int(state.step) == 1 and meta["data_position"] == 1
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))


def test_killed_mid_epoch_with_host_crops_resumes_bit_identically(tmp_path):
  """The parallel host path (JPEGs cropped from the full image by two worker threads) under SIGKILL mid-epoch."""
  extra = jpeg_folder_args(tmp_path / "jpegs")
  reference = tmp_path / "reference"
  assert "crops on the host" in _run(reference, *extra).stdout
  run = tmp_path / "killed"
  code, out, _ = _start_and_signal(run, signal.SIGKILL, 4, *extra)       # step 4: the second batch of epoch 2
  assert code == -signal.SIGKILL and not os.path.isdir(run / "checkpoints" / str(STEPS))
  assert "resuming from step" in _run(run, *extra).stdout
  _assert_identical(_final_state(reference), _final_state(run))


def test_a_finite_loss_with_a_non_finite_update_is_caught_before_it_is_saved(tmp_path, monkeypatch):
  """The loss and gradients of step 2 are finite, but the optimizer's update makes the weights NaN: the guard
  reads the updated state too, so checkpoint 2 is never written, and the workdir resumes from checkpoint 1
  once the cause is gone."""
  import jax.numpy as jnp

  from jaxssl import train
  from jaxssl.ops import optim
  from jaxssl.runs import checkpoint
  from tiny import tiny_config

  config = tiny_config("byol")
  config.train.num_steps, config.train.checkpoint_every, config.eval.knn_at_init = 4, 1, False
  schedule = optim.learning_rate_schedule

  def poisoned(*args, **kwargs):     # a NaN learning rate from the second step on (the optimizer's shape kept)
    return lambda count: jnp.where(count >= 1, jnp.nan, schedule(*args, **kwargs)(count))

  monkeypatch.setattr(optim, "learning_rate_schedule", poisoned)
  with pytest.raises(train.TrainingError, match=r"step 2: not finite: state/params/\S+ \(loss=[0-9.]+\)"):
    train.run(config, str(tmp_path))
  checkpointer = checkpoint.Checkpointer(str(tmp_path))
  assert checkpointer.latest_step() == 1
  checkpointer.close()
  monkeypatch.setattr(optim, "learning_rate_schedule", schedule)
  results = train.run(config, str(tmp_path))               # resumes from the finite checkpoint 1
  assert results["steps"] == 4 and np.isfinite(results["final_loss"])


MAE_ARGS = ["--config=configs/mae.py", "--config.data.source=synthetic", "--config.data.synthetic_size=16",
            "--config.augment.size=16", "--config.train.batch_size=16", "--config.method.decoder_dim=32",
            "--config.method.decoder_depth=1", f"--config.train.num_steps={STEPS}",
            "--config.train.checkpoint_every=1", "--config.train.keep_checkpoints=2",
            "--config.eval.knn_at_init=False", "--config.eval.at_end=False", "--config.train.log_every=1"]


def test_mae_killed_mid_run_resumes_bit_identically(tmp_path, monkeypatch):
  """MAE's masks come from the per-example keys: a run killed outright and resumed draws the same ones."""
  monkeypatch.setattr(sys.modules[__name__], "ARGS", MAE_ARGS)
  reference = tmp_path / "reference"
  _run(reference)
  run = tmp_path / "killed"
  code, out, _ = _start_and_signal(run, signal.SIGKILL, 3)
  assert code == -signal.SIGKILL and not os.path.isdir(run / "checkpoints" / str(STEPS))
  assert "resuming from step" in _run(run).stdout
  _assert_identical(_final_state(reference), _final_state(run))
