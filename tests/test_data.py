import gzip

import ml_collections
import numpy as np
import pytest

from jaxssl import data
from jaxssl.data import idx


def _write_idx(path, array, compress):
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  payload = header + array.astype(np.uint8).tobytes()
  with (gzip.open if compress else open)(path, "wb") as f:
    f.write(payload)


def _write_fashion_mnist(directory, n_train=12, n_test=6, compress=True):
  rng = np.random.default_rng(0)
  arrays = {
      "train_images": rng.integers(0, 256, (n_train, 28, 28)), "train_labels": rng.integers(0, 10, n_train),
      "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": rng.integers(0, 10, n_test)}
  for key, stem in idx.FASHION_MNIST_FILES.items():
    _write_idx(str(directory / (stem + (".gz" if compress else ""))), arrays[key], compress)
  return arrays


@pytest.mark.parametrize("compress", [True, False])
def test_reads_fashion_mnist_idx(tmp_path, compress):
  arrays = _write_fashion_mnist(tmp_path, compress=compress)
  config = ml_collections.ConfigDict({"dataset": "fashion_mnist", "data_dir": str(tmp_path)})
  dataset = data.load(config)
  assert dataset.train_images.shape == (12, 28, 28, 1) and dataset.train_images.dtype == np.uint8
  np.testing.assert_array_equal(dataset.train_images[..., 0], arrays["train_images"])
  np.testing.assert_array_equal(dataset.test_labels, arrays["test_labels"])
  assert dataset.train_labels.dtype == np.int32


def test_malformed_and_missing_files_give_data_errors(tmp_path):
  config = ml_collections.ConfigDict({"dataset": "fashion_mnist", "data_dir": str(tmp_path / "absent")})
  with pytest.raises(data.DataError, match="config.data.data_dir="):
    data.load(config)
  config.data_dir = str(tmp_path)
  with pytest.raises(data.DataError, match="has no train-images"):
    data.load(config)
  _write_fashion_mnist(tmp_path)
  (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc"))
  with pytest.raises(data.DataError, match="header says"):
    data.load(config)


def test_batches_are_deterministic_reshuffled_and_split_across_processes():
  dataset = data.synthetic(num_train=64, size=8)
  first = [b["label"] for b, _ in zip(data.train_batches(dataset, 16, seed=3), range(8))]
  again = [b["label"] for b, _ in zip(data.train_batches(dataset, 16, seed=3), range(8))]
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  whole = [b["image"] for b, _ in zip(data.train_batches(dataset, 16, seed=3), range(8))]
  # One epoch (4 batches) covers each example once; the next epoch is another order.
  epoch0 = np.concatenate(whole[:4]).reshape(64, -1)
  assert len(np.unique(epoch0, axis=0)) == len(np.unique(dataset.train_images.reshape(64, -1), axis=0))
  assert not np.array_equal(np.concatenate(whole[:4]), np.concatenate(whole[4:]))
  # Two processes each get half of every global batch, and together exactly the one-process batch.
  halves = [[b["image"] for b, _ in zip(data.train_batches(dataset, 16, 3, p, 2), range(8))] for p in (0, 1)]
  for step in range(8):
    assert halves[0][step].shape[0] == 8
    np.testing.assert_array_equal(np.concatenate([halves[0][step], halves[1][step]]), whole[step])


def test_batch_larger_than_split():
  with pytest.raises(data.DataError, match="config.train.batch_size=128"):
    next(data.train_batches(data.synthetic(num_train=64, size=8), 128, seed=0))
