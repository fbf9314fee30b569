"""Data: sources (TFDS, image folder, numpy, IDX, synthetic), the host pipeline, offline preparation.

``load(config.data)`` returns a Dataset of sources; ``Pipeline`` turns the train source into this process's share
of each global batch. Images stay uint8 on the host. Small fixed-size datasets are cropped on the device;
datasets of large images of varying size are cropped on the host, from the full image, by ``HostCropper``
(``crops_on_host``), where fine-tuning's RandAugment and flip run too (``host_randaugment``); every other
photometric op happens on the device.
"""

from __future__ import annotations

import os
from typing import Callable, NamedTuple

import ml_collections
import numpy as np

from jaxssl.data import idx
from jaxssl.data.bad_images import BadImages
from jaxssl.data.errors import BadImage, DataError, ReadTimeout, Stopped
from jaxssl.data.host_crops import CropSpec, HostCropper, available_cores, crop_specs, view_key
from jaxssl.data.label_subset import SubsetSource, balanced_indices, label_subset
from jaxssl.data.pipeline import Pipeline, global_batch_indices
from jaxssl.data.sources import ArraySource, FolderSource, Source, TfdsSource, cached, synthetic

SOURCES = ("tfds", "folder", "numpy", "idx", "synthetic")
CROP_PLACES = ("auto", "host", "device")

__all__ = ["ArraySource", "BadImage", "BadImages", "CROP_PLACES", "CropSpec", "DataError", "Dataset",
           "FolderSource", "HostCropper", "Pipeline", "ReadTimeout", "SOURCES", "Source", "Stopped", "SubsetSource",
           "TfdsSource", "available_cores", "balanced_indices", "cached", "crop_specs", "crops_on_host",
           "global_batch_indices", "host_cropper", "label_subset", "load", "synthetic", "view_key"]


def crops_on_host(config: ml_collections.ConfigDict) -> bool:
  """Whether the random resized crops of the train split are taken on the host (``config`` is the config's
  ``data`` section).

  ``crop_on="auto"`` (the default) crops on the host where images are read at their own, varying sizes: an image
  folder, or a TFDS dataset resized on the host (``image_size`` > 0, e.g. ImageNet); it crops on the device for
  fixed-size datasets held in memory (Fashion-MNIST, CIFAR-10, STL-10, numpy, IDX, synthetic).
  """
  crop_on = config.get("crop_on", "auto")          # partial data configs built in Python may leave it out
  if crop_on != "auto":
    return crop_on == "host"
  return config.source == "folder" or (config.source == "tfds" and config.image_size > 0)


def host_cropper(config: ml_collections.ConfigDict, recipes, channels: int) -> HostCropper:
  """The cropper for ``recipes`` (one ``augment.ViewRecipe`` per view) with ``config.data.workers`` threads
  (0: one per available core) and the run's seed."""
  return HostCropper(crop_specs(recipes), seed=config.seed, channels=channels, workers=config.data.workers,
                     timeout_s=config.data.get("read_timeout_s", 0.0))


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


def _splits(config, make: Callable[[str], Source]) -> Dataset:
  """The Dataset of the splits config.{train,eval_train,test}_split name, each built by ``make(field)``.

  An empty eval_train_split means the train split; an empty test_split means none. Splits without labels are
  not used for evaluation. num_classes is the largest of the labeled splits', set on each of them.
  """
  train = make("train_split")
  eval_train = make("eval_train_split") if config.eval_train_split not in ("", config.train_split) else train
  test = make("test_split") if config.test_split else None
  for field, split in (("train_split", train), ("eval_train_split", eval_train), ("test_split", test)):
    if split is not None and split.where == Source.where:
      split.where = f"config.data.{field}={config[field] or config.train_split!r}"
  labeled = [s for s in (train, eval_train, test) if s is not None and s.labeled]
  classes = max((s.num_classes for s in labeled), default=0)
  for s in labeled:
    s.num_classes = classes
  return Dataset(train, eval_train if eval_train is not None and eval_train.labeled else None,
                 test if test is not None and test.labeled else None, classes)


def _tfds(config) -> Dataset:
  return _splits(config, lambda field: TfdsSource(config.dataset, config[field], config.data_dir,
                                                  image_size=config.image_size, split_field=f"data.{field}"))


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
    if not hasattr(arrays, "files"):
      raise ValueError("an .npy array, not an .npz archive of named arrays")
  except (OSError, ValueError, EOFError) as e:
    why = "not an .npz archive" if "pickle" in str(e) else " ".join(str(e).split())
    raise DataError(f"config.data.data_dir={path!r} is not a readable .npz file ({why}); write one with "
                    "np.savez(path, train_images=uint8 [N, H, W, C], train_labels=int [N], ...)") from None

  def array(key: str) -> np.ndarray:
    try:
      return arrays[key]
    except ValueError:            # object arrays need pickle, which is never loaded
      raise DataError(f"config.data.data_dir={path!r}: array {key!r} holds Python objects; save numbers "
                      "(uint8 images, int labels)") from None

  def split(field: str) -> ArraySource:
    name = config[field]
    if f"{name}_images" not in arrays:
      raise DataError(f"config.data.data_dir={path!r} has no array '{name}_images' (keys: {sorted(arrays)})")
    labels = array(f"{name}_labels") if f"{name}_labels" in arrays else None
    if labels is not None and np.issubdtype(labels.dtype, np.integer) and 0 < np.sum(labels < 0) < len(labels):
      raise DataError(f"config.data.data_dir={path!r}: '{name}_labels' has {int(np.sum(labels < 0))} negative "
                      f"labels among {len(labels)}; labels are class indices >= 0 (all -1: an unlabeled split)")
    try:
      return ArraySource(array(f"{name}_images"), labels)
    except DataError as e:
      raise DataError(f"config.data.data_dir={path!r}, split {name!r}: {e}") from None

  return _splits(config, split)


def _folder(config) -> Dataset:
  def split(field: str) -> FolderSource:
    name = config[field]
    return FolderSource(os.path.join(config.data_dir, name), config.image_size, len(config.mean),
                        field=f"data.data_dir (+ {name!r})")

  dataset = _splits(config, split)
  # Labels are class-folder indices: splits compared by index must name the same classes.
  labeled = [(f, s) for f, s in (("train_split", dataset.train), ("eval_train_split", dataset.eval_train),
                                 ("test_split", dataset.test)) if s is not None and s.labeled]
  for field, source in labeled[1:]:
    if source.classes != labeled[0][1].classes:
      extra = sorted(set(source.classes) ^ set(labeled[0][1].classes))[:5]
      raise DataError(f"config.data.{field}={config[field] or config.train_split!r}: its class folders differ "
                      f"from config.data.{labeled[0][0]}'s (e.g. {', '.join(extra) or 'their order'}); labels are "
                      "folder indices, so every labeled split needs the same class folders")
  return dataset


def check_against_config(dataset: Dataset, config: ml_collections.ConfigDict) -> None:
  """The splits against each other and against the config, before anything is written: one channel count
  for every split, one data.mean / data.std entry per channel, a batch no larger than the train split."""
  channels = dataset.train.image_shape[-1]
  for field, source in (("eval_train_split", dataset.eval_train), ("test_split", dataset.test)):
    if source is not None and source.image_shape[-1] != channels:
      raise DataError(f"config.data.{field}={config.data[field]!r}: its images have {source.image_shape[-1]} "
                      f"channels, the train split's {channels}")
  if len(config.data.mean) != channels:
    raise DataError(f"config.data.mean={tuple(config.data.mean)}: needs one value per channel; the images have "
                    f"{channels}")
  if config.train.batch_size > len(dataset.train):
    raise DataError(f"config.train.batch_size={config.train.batch_size}: larger than the train split "
                    f"({len(dataset.train)} examples)")


def load(config: ml_collections.ConfigDict) -> Dataset:
  """The splits ``config`` (the config's ``data`` section) names; raises DataError naming the field when it
  cannot. With ``config.cache`` each split is read into memory once (right for small datasets). With
  ``config.label_fraction`` < 1 the train split is a class-balanced share of its examples
  (``label_subset``); the evaluation splits stay whole."""
  dataset = _load(config)
  fraction = config.get("label_fraction", 1.0)
  if fraction < 1.0:
    train = label_subset(dataset.train, fraction, config.get("label_seed", 0))
    dataset = Dataset(train, dataset.eval_train, dataset.test, dataset.num_classes)
  return dataset


def _load(config: ml_collections.ConfigDict) -> Dataset:
  if config.source == "synthetic":
    train = synthetic(config.synthetic_num_examples, config.synthetic_size, config.synthetic_channels)
    test = synthetic(max(config.synthetic_num_examples // 4, 1), config.synthetic_size,
                     config.synthetic_channels, seed=1)
    return Dataset(train, train, test, 10)
  loaders = {"tfds": _tfds, "idx": _idx, "numpy": _numpy, "folder": _folder}
  if config.source not in loaders:
    raise DataError(f"config.data.source={config.source!r} is unknown; use one of {', '.join(SOURCES)}")
  dataset = loaders[config.source](config)
  # Unreadable images are substituted from the start (the run later records them in its workdir: attach), and
  # reads outside the training pipeline give up after the read timeout as its reads do.
  bad = BadImages(config.get("max_bad_images", 100))
  for split in dataset[:3]:
    if split is not None:
      split.bad_images = bad
      split.read_timeout_s = config.get("read_timeout_s", 0.0)
  if config.cache:
    # Cropped on the host, the train split is read from its full-size originals at every step.
    keep = {id(dataset.train)} if crops_on_host(config) else set()
    memo = {}
    dataset = Dataset(*(s if s is None or id(s) in keep else memo.setdefault(id(s), cached(s))
                        for s in dataset[:3]), dataset.num_classes)
  return dataset
