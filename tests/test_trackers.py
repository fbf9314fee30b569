"""The trackers (``metrics.writers``): TensorBoard's runs named by workdir and its projector's files, a workdir of
an older run kept as it was, Weights & Biases in offline mode (its own record file read back), and a writer that
is unknown or not installed refused in one line."""

import json
import os
import struct

import numpy as np
import pytest

from jaxssl import train
from jaxssl.common import projector, trackers
from jaxssl.schema import validate
from tiny import tiny_config


def test_run_name_is_the_workdirs_last_folder_unless_named():
  assert trackers.run_name("runs/vicreg/") == "vicreg"
  assert trackers.run_name("gs://bucket/runs/mae") == "mae"
  assert trackers.run_name("runs/vicreg", "vicreg-lr0.3") == "vicreg-lr0.3"


def test_projector_files_keep_the_newest_evaluations(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 255, (10, 28, 28, 1), dtype=np.uint8)
  for step in range(projector.KEEP + 2):
    projector.write(tmp_path, rng.normal(size=(10, 4)), [f"class {i % 3}" for i in range(10)], images, step)
  kept = sorted(os.listdir(tmp_path / "embeddings"))
  assert kept == [f"{step:08d}" for step in range(2, projector.KEEP + 2)]
  config = (tmp_path / "projector_config.pbtxt").read_text()
  assert config.count("embeddings {") == projector.KEEP and "embeddings/00000006/features.tsv" in config
  newest = tmp_path / "embeddings" / "00000006"
  rows = [line.split("\t") for line in (newest / "features.tsv").read_text().splitlines()]
  assert len(rows) == 10 and all(len(row) == 4 for row in rows)
  assert (newest / "labels.tsv").read_text().splitlines()[:4] == ["class 0", "class 1", "class 2", "class 0"]
  from PIL import Image

  assert Image.open(newest / "sprite.png").size == (4 * 28, 4 * 28)      # 10 images in a 4 x 4 grid
  with pytest.raises(ValueError, match="10 features, 9 labels"):
    projector.write(tmp_path, rng.normal(size=(10, 4)), ["a"] * 9, images, 7)


def _train(method: str, workdir, **metrics):
  config = tiny_config(method)
  config.train.num_steps, config.train.log_every, config.eval.knn_at_init = 2, 1, False
  config.metrics.embedding_points = 20
  for key, value in metrics.items():
    config.metrics[key] = value
  validate.validate(config, 1)
  return config, train.run(config, str(workdir))


def test_tensorboard_writes_in_the_workdir_with_the_test_features_for_its_projector(tmp_path):
  """``tensorboard --logdir runs`` shows the run as ``vicreg``; the projector lists the final evaluation's
  features of 20 test images spread over the split, with their class names."""
  workdir = tmp_path / "vicreg"
  _train("mae", workdir)
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(workdir))
  assert not (workdir / "tensorboard").exists()
  assert "embeddings/00000002/features.tsv" in (workdir / "projector_config.pbtxt").read_text()
  labels = (workdir / "embeddings" / "00000002" / "labels.tsv").read_text().splitlines()
  features = (workdir / "embeddings" / "00000002" / "features.tsv").read_text().splitlines()
  assert len(labels) == len(features) == 20 and len(set(labels)) > 1      # spread over the split's classes


def test_an_older_runs_tensorboard_folder_keeps_its_events(tmp_path):
  (tmp_path / "tensorboard").mkdir()
  _train("mae", tmp_path, embedding_points=0)
  assert any(name.startswith("events.out") for name in os.listdir(tmp_path / "tensorboard"))
  assert not any(name.startswith("events.out") for name in os.listdir(tmp_path))
  assert not (tmp_path / "embeddings").exists()                           # metrics.embedding_points=0


def _wandb_records(path) -> list:
  """The records of a W&B run file (``run-ID.wandb``: a 7-byte header, then LevelDB-log blocks of 32 KiB, each
  record with a 7-byte header: CRC, length, type 1 full / 2 first / 3 middle / 4 last)."""
  from wandb.proto import wandb_internal_pb2

  raw, i, block, pending, out = path.read_bytes(), 7, 32768, b"", []
  assert raw[:4] == b":W&B", raw[:7]
  while i + 7 <= len(raw):
    if block - i % block < 7:                                             # the block's padding
      i += block - i % block
      continue
    _, length, kind = struct.unpack("<IHB", raw[i:i + 7])
    if kind == 0:
      i += block - i % block
      continue
    pending += raw[i + 7:i + 7 + length]
    i += 7 + length
    if kind in (1, 4):
      record = wandb_internal_pb2.Record()
      record.ParseFromString(pending)
      out.append(record)
      pending = b""
  return out


def _wandb_run(folder):
  """(run record, [history as {key: value}], config keys) of the offline runs under ``folder``."""
  runs, history, config = [], [], set()
  for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
    for record in _wandb_records(path):
      kind = record.WhichOneof("record_type")
      if kind == "run":
        runs.append(record.run)
      elif kind == "history":
        history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                        for item in record.history.item})
      elif kind == "config":
        config |= {item.key for item in record.config.update}
  return runs, history, config


@pytest.mark.slow
def test_wandb_offline_gets_the_metrics_config_and_views_and_a_resume_goes_on_in_the_same_run(tmp_path,
                                                                                            monkeypatch):
  pytest.importorskip("wandb")
  monkeypatch.setenv("WANDB_SILENT", "true")
  workdir = tmp_path / "mae_run"
  config, _ = _train("mae", workdir, writers=("tensorboard", "wandb"), wandb_mode="offline")
  run_id = (workdir / "wandb_id").read_text().strip()
  runs, history, keys = _wandb_run(workdir)
  assert [(r.display_name, r.run_id, r.project) for r in runs] == [("mae_run", run_id, "jaxssl")]
  assert {"method.name", "optim.base_lr", "metrics.writers"} <= keys
  steps = {h["step"] for h in history if "train/loss" in h}
  assert steps == {1, 2}
  assert [h["eval/knn_accuracy"] for h in history if "eval/knn_accuracy" in h] == [
      json.loads((workdir / "results.json").read_text())["results"]["knn_accuracy"]]
  assert any("views" in key for h in history for key in h) and any("reconstructions" in k for h in history for k in h)
  assert any(name.startswith("events.out") for name in os.listdir(workdir))     # TensorBoard too

  config.train.num_steps = 3                                                      # two segments, one W&B run
  train.run(config, str(workdir), allow_change=["train.num_steps"])
  runs, history, _ = _wandb_run(workdir)
  assert {r.run_id for r in runs} == {run_id} and len(runs) == 2
  assert {h["step"] for h in history if "train/loss" in h} == {1, 2, 3}


def test_unknown_or_missing_writers_are_refused_in_one_line(monkeypatch):
  config = tiny_config("simclr")
  config.metrics.writers = ("tensorboard", "mlflow")
  with pytest.raises(validate.ConfigError, match=r"metrics.writers=.*unknown writer 'mlflow'"):
    validate.validate(config, 1)
  monkeypatch.setitem(trackers.PACKAGES, "wandb", "wandb_that_is_not_installed")
  config.metrics.writers = ("wandb",)
  with pytest.raises(validate.ConfigError, match=r"wandb needs the wandb_that_is_not_installed package: pip install "
                                                 r"'jaxssl\[wandb\]'"):
    validate.validate(config, 1)
