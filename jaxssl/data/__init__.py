"""Data sources (host side, numpy) and the host batch iterator.

Sources return uint8 images [N, H, W, C] and int32 labels [N] (-1 where a split has no labels). All augmentation
happens later, on device.
"""

from __future__ import annotations

import os
from typing import Iterator, NamedTuple

import ml_collections
import numpy as np

from jaxssl.data import idx


class DataError(ValueError):
  """Bad or missing data; the message names the config field and what to do."""


class Dataset(NamedTuple):
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int


def synthetic(num_train: int = 512, num_test: int = 128, size: int = 28, channels: int = 1,
              num_classes: int = 10, seed: int = 0) -> Dataset:
  """Random images whose class sets a bright square's position: learnable, tiny, and needs no files."""
  rng = np.random.default_rng(seed)

  def make(n):
    labels = rng.integers(0, num_classes, size=n).astype(np.int32)
    images = rng.integers(0, 64, size=(n, size, size, channels)).astype(np.uint8)
    cell = max(size // 4, 1)
    for i, label in enumerate(labels):
      r, c = divmod(int(label) % 16, 4)
      images[i, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = 255
    return images, labels

  train_images, train_labels = make(num_train)
  test_images, test_labels = make(num_test)
  return Dataset(train_images, train_labels, test_images, test_labels, num_classes)


def load(config: ml_collections.ConfigDict) -> Dataset:
  """The dataset named by ``config.dataset`` ("fashion_mnist" from IDX files in ``config.data_dir``, or
  "synthetic"). Raises DataError naming the field when it cannot."""
  if config.dataset == "synthetic":
    return synthetic(size=config.synthetic_size, channels=config.synthetic_channels)
  if config.dataset == "fashion_mnist":
    directory = config.data_dir
    if not directory or not os.path.isdir(directory):
      raise DataError(f"config.data.data_dir={directory!r} is not a directory; install the data with "
                      "`apt-get install -y dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist) or point "
                      "data_dir at a directory holding the four Fashion-MNIST IDX files")
    try:
      arrays = idx.load_fashion_mnist(directory)
    except (FileNotFoundError, ValueError, OSError, EOFError) as e:
      raise DataError(f"config.data.data_dir={directory!r}: {e}") from None
    return Dataset(arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"],
                   num_classes=10)
  raise DataError(f"config.data.dataset={config.dataset!r} is unknown; use 'fashion_mnist' or 'synthetic'")


def train_batches(dataset: Dataset, global_batch: int, seed: int, process_index: int = 0,
                  process_count: int = 1, start_epoch: int = 0) -> Iterator[dict[str, np.ndarray]]:
  """Endless iterator over this process's share of each global batch, reshuffled every epoch.

  The order is a permutation drawn from (seed, epoch), so it does not depend on the number of processes; each
  global batch is split into ``process_count`` contiguous slices and this process yields slice
  ``process_index``. The last incomplete batch of an epoch is dropped.
  """
  n = len(dataset.train_images)
  per_process = global_batch // process_count
  steps_per_epoch = n // global_batch
  if steps_per_epoch == 0:
    raise DataError(f"config.train.batch_size={global_batch} is larger than the train split ({n} examples)")
  epoch = start_epoch
  while True:
    order = np.random.default_rng([seed, epoch]).permutation(n)
    for b in range(steps_per_epoch):
      # Sorting the global batch makes the host gather faster and keeps positions independent of the layout.
      members = np.sort(order[b * global_batch:(b + 1) * global_batch])
      chosen = members[process_index * per_process:(process_index + 1) * per_process]
      yield {"image": dataset.train_images[chosen], "label": dataset.train_labels[chosen]}
    epoch += 1
