"""Data: sources (TFDS, image folder, numpy, IDX, synthetic), the host pipeline, offline preparation.

``load(config.data)`` returns a Dataset of sources; ``Pipeline`` turns the train source into this process's share
of each global batch. Images stay uint8 on the host; augmentation happens on device.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import ml_collections
import numpy as np

from jaxssl.data import idx
from jaxssl.data.pipeline import Pipeline, global_batch_indices
from jaxssl.data.sources import (ArraySource, DataError, FolderSource, Source, TfdsSource, cached,
                                 synthetic)

SOURCES = ("tfds", "folder", "numpy", "idx", "synthetic")

__all__ = ["ArraySource", "DataError", "Dataset", "FolderSource", "Pipeline", "SOURCES", "Source", "TfdsSource",
           "cached", "global_batch_indices", "load", "synthetic"]


class Dataset(NamedTuple):
  """The splits of a run.

  Attributes:
    train: the pretraining split (may be unlabeled).
    eval_train: the labeled split kNN and the linear probe fit on; None when there is none.
    test: the labeled split they are scored on; None when there is none.
    num_classes: number of classes of the labeled splits (0 when unknown).
  """
  train: Source
  eval_train: Source | None
  test: Source | None
  num_classes: int


def _labeled(source: Source | None) -> Source | None:
  return source if source is not None and source.labeled else None


def _tfds(config) -> Dataset:
  def split(field: str) -> TfdsSource | None:
    if not config[field]:
      return None
    return TfdsSource(config.dataset, config[field], config.data_dir, image_size=config.image_size,
                      split_field=f"data.{field}")

  train = split("train_split")
  eval_train = split("eval_train_split") if config.eval_train_split not in ("", config.train_split) else train
  test = split("test_split")
  return Dataset(train, _labeled(eval_train), _labeled(test), train.num_classes)


def _idx(config) -> Dataset:
  directory = config.data_dir
  if not directory or not os.path.isdir(directory):
    raise DataError(f"config.data.data_dir={directory!r} is not a directory; install the data with "
                    "`apt-get install -y dataset-fashion-mnist` (/usr/share/datasets/fashion-mnist) or point "
                    "data_dir at a directory holding the four Fashion-MNIST IDX files")
  try:
    arrays = idx.load_fashion_mnist(directory)
  except (FileNotFoundError, ValueError, OSError, EOFError) as e:
    raise DataError(f"config.data.data_dir={directory!r}: {e}") from None
  train = ArraySource(arrays["train_images"], arrays["train_labels"], 10)
  return Dataset(train, train, ArraySource(arrays["test_images"], arrays["test_labels"], 10), 10)


def _numpy(config) -> Dataset:
  path = config.data_dir
  try:
    arrays = np.load(path)
  except (OSError, ValueError) as e:
    raise DataError(f"config.data.data_dir={path!r} is not a readable .npz file ({e})") from None

  def split(name: str) -> ArraySource | None:
    if not name:
      return None
    if f"{name}_images" not in arrays:
      raise DataError(f"config.data.data_dir={path!r} has no array '{name}_images' (keys: {sorted(arrays)})")
    labels = arrays[f"{name}_labels"] if f"{name}_labels" in arrays else None
    return ArraySource(arrays[f"{name}_images"], labels)

  train = split(config.train_split)
  eval_train = split(config.eval_train_split) if config.eval_train_split not in ("", config.train_split) else train
  test = split(config.test_split)
  classes = max((s.num_classes for s in (train, eval_train, test) if s is not None and s.labeled), default=0)
  for s in (train, eval_train, test):
    if s is not None and s.labeled:
      s.num_classes = classes
  return Dataset(train, _labeled(eval_train), _labeled(test), classes)


def _folder(config) -> Dataset:
  channels = len(config.mean)

  def split(name: str, labeled: bool) -> FolderSource | None:
    if not name:
      return None
    root = os.path.join(config.data_dir, name)
    return FolderSource(root, config.image_size, channels, labeled=labeled, field=f"data.data_dir (+ {name!r})")

  train = split(config.train_split, labeled=True)
  eval_train = (split(config.eval_train_split, True) if config.eval_train_split not in ("", config.train_split)
                else train)
  test = split(config.test_split, True)
  return Dataset(train, _labeled(eval_train), _labeled(test), train.num_classes or getattr(test, "num_classes", 0))


def load(config: ml_collections.ConfigDict) -> Dataset:
  """The splits ``config`` (the config's ``data`` section) names; raises DataError naming the field when it
  cannot. With ``config.cache`` each split is read into memory once (right for small datasets)."""
  if config.source == "synthetic":
    train = synthetic(config.synthetic_num_examples, config.synthetic_size, config.synthetic_channels)
    test = synthetic(max(config.synthetic_num_examples // 4, 1), config.synthetic_size,
                     config.synthetic_channels, seed=1)
    return Dataset(train, train, test, 10)
  loaders = {"tfds": _tfds, "idx": _idx, "numpy": _numpy, "folder": _folder}
  if config.source not in loaders:
    raise DataError(f"config.data.source={config.source!r} is unknown; use one of {', '.join(SOURCES)}")
  dataset = loaders[config.source](config)
  if config.cache:
    memo = {}
    dataset = Dataset(*(memo.setdefault(id(s), cached(s)) if s is not None else None for s in dataset[:3]),
                      dataset.num_classes)
  return dataset
