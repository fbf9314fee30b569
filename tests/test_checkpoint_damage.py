"""A damaged, partial or stray latest checkpoint is reported as damaged and the run falls back to the newest
intact one, ending bit-identical to an uninterrupted run; only a real model mismatch says "does not fit"."""

import json
import os
import shutil

import pytest

from jaxssl import train
from jaxssl.runs.checkpoint import CheckpointMismatch
from tiny import tiny_config


def _config():
  config = tiny_config("simclr")
  config.train.num_steps, config.train.checkpoint_every, config.train.keep_checkpoints = 4, 1, 3
  config.eval.knn_at_init, config.eval.online_probe, config.eval.at_end = False, False, False
  return config


def _checksums(workdir, step):
  with open(os.path.join(workdir, "checkpoints", str(step), "meta", "metadata")) as f:
    return json.load(f)["checksums"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("reference") / "run")
  train.run(_config(), workdir)
  return workdir


def _largest_file(folder):
  files = [os.path.join(d, f) for d, _, names in os.walk(folder) for f in names]
  return max(files, key=os.path.getsize)


def _truncate(state):
  path = _largest_file(state)
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _flip(state):
  path = _largest_file(state)
  with open(path, "r+b") as f:
    f.seek(os.path.getsize(path) // 2)
    chunk = f.read(64)
    f.seek(os.path.getsize(path) // 2)
    f.write(bytes(b ^ 0xFF for b in chunk))


DAMAGE = {
    "stray empty folder": lambda ckpt: os.makedirs(os.path.join(os.path.dirname(ckpt), "9")),
    "bytes flipped": lambda ckpt: _flip(os.path.join(ckpt, "state")),
    "data truncated": lambda ckpt: _truncate(os.path.join(ckpt, "state")),
    "state metadata deleted": lambda ckpt: os.remove(os.path.join(ckpt, "state", "_METADATA")),
    "state metadata garbage": lambda ckpt: open(os.path.join(ckpt, "state", "_METADATA"), "w").write("{garbage"),
    "state folder deleted": lambda ckpt: shutil.rmtree(os.path.join(ckpt, "state")),
    "record deleted": lambda ckpt: shutil.rmtree(os.path.join(ckpt, "meta")),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_the_run_falls_back_past_a_damaged_checkpoint(finished, tmp_path, damage, capsys):
  workdir = str(tmp_path / "run")
  shutil.copytree(finished, workdir)
  os.remove(os.path.join(workdir, "results.json"))       # as if the run had died after its last save
  DAMAGE[damage](os.path.join(workdir, "checkpoints", "4"))
  results = train.run(_config(), workdir)
  out = capsys.readouterr().out
  assert results["steps"] == 4
  assert "is damaged" in out and "does not fit" not in out
  assert "resuming from step 3" in out if damage != "stray empty folder" else "resuming from step 4" in out
  assert _checksums(workdir, 4) == _checksums(finished, 4)   # bit-identical to the uninterrupted run
  aside = [name for name in os.listdir(os.path.join(workdir, "checkpoints")) if name.startswith("damaged-")]
  assert aside == (["damaged-9"] if damage == "stray empty folder" else ["damaged-4"])


def test_only_a_real_model_change_does_not_fit(finished, tmp_path):
  import jax

  from jaxssl.engine import train_step
  from jaxssl.runs import checkpoint

  config = _config()
  config.method.proj_dim = 8                              # another model, same workdir
  trainer = train_step.build(config, 4)
  abstract = jax.eval_shape(lambda: train_step.init_state(trainer, jax.random.key(0), 1))
  checkpointer = checkpoint.Checkpointer(finished)
  with pytest.raises(CheckpointMismatch, match=r"does not fit this run's config: \S*projector/\S+ has shape"):
    checkpointer.restore_intact(abstract)
  checkpointer.close()
  assert sorted(os.listdir(os.path.join(finished, "checkpoints"))) == ["2", "3", "4"]   # nothing moved
