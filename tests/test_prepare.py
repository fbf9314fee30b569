"""Offline preparation of TFDS's fashion_mnist from local IDX files (the command, then reading it back)."""

import os
import subprocess
import sys

import ml_collections
import numpy as np

from jaxssl import data
from test_data import _write_fashion_mnist

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _prepare(*args):
  return subprocess.run([sys.executable, "-m", "jaxssl.data.prepare", *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


def _rows(images, labels):
  return sorted(images[i].tobytes() + bytes([int(labels[i])]) for i in range(len(labels)))


def test_prepare_builds_tfds_fashion_mnist_offline_from_idx_files(tmp_path):
  source = tmp_path / "idx"
  source.mkdir()
  arrays = _write_fashion_mnist(source, n_train=30, n_test=10)
  out = tmp_path / "tfds"
  result = _prepare("fashion_mnist", "--from", str(source), "--data_dir", str(out))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "prepared fashion_mnist" in result.stdout and "test 10, train 30" in result.stdout
  assert os.path.isdir(out / "fashion_mnist")
  # Its own two lines, without TFDS's banner and progress bars or TensorFlow's log lines.
  assert len(result.stdout.splitlines()) == 2 and result.stdout.startswith("preparing fashion_mnist (from ")
  for noise in ("Downloading and preparing", "Generating", "Shuffling", "oneDNN", "downloaded and prepared"):
    assert noise not in result.stdout + result.stderr, (noise, result.stderr[-2000:])

  config = ml_collections.ConfigDict({"source": "tfds", "dataset": "fashion_mnist", "data_dir": str(out),
                                      "train_split": "train", "eval_train_split": "", "test_split": "test",
                                      "image_size": 0, "cache": True})
  dataset = data.load(config)
  assert len(dataset.train) == 30 and len(dataset.test) == 10 and dataset.num_classes == 10
  # TFDS stores examples in its own (hashed) order: the same examples, as a multiset.
  images, labels = dataset.train.all()
  assert _rows(images[..., 0], labels) == _rows(arrays["train_images"].astype(np.uint8), arrays["train_labels"])


def test_prepare_errors_are_one_line(tmp_path):
  result = _prepare("fashion_mnist", "--from", str(tmp_path / "absent"), "--data_dir", str(tmp_path / "out"))
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "absent" in errors[0] and "Traceback" not in result.stderr
  result = _prepare("cifar10", "--from", str(tmp_path), "--data_dir", str(tmp_path / "out"))
  assert result.returncode == 2 and "--from is supported for fashion_mnist, mnist" in result.stderr
