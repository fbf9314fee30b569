"""Random-access data sources on the host: TFDS (array_record), image folders, numpy arrays, IDX files, synthetic.

A source is one split. ``source.read(indices)`` returns uint8 images [n, H, W, C] and int32 labels [n] (-1 where
the split has no labels); every image of a source has the same shape. Sources only read and decode;
augmentation happens later (on the device, or in the host crops' workers: ``host_crops``).
"""

from __future__ import annotations

import logging
import os
from typing import Sequence

import numpy as np

from jaxssl.data.bad_images import read_substituting
from jaxssl.data.decode import decode_errors, describe_decode_error, to_mode
from jaxssl.data.errors import BadImage, DataError
from jaxssl.data.guarded_read import guarded


class _QuietOpenCvAdvice(logging.Filter):
  """TFDS advises installing OpenCV on every image dataset it opens; PIL decodes what jaxssl reads, and the
  host crops decode with PIL on purpose (reduced-size JPEG decoding), so the advice is noise."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "OpenCV is not installed" not in str(record.msg)


def _quiet_opencv_advice() -> None:
  """Installs the filter on absl's logger, once: when a TFDS source is opened, not when this module is imported."""
  logger = logging.getLogger("absl")
  if not any(isinstance(f, _QuietOpenCvAdvice) for f in logger.filters):
    logger.addFilter(_QuietOpenCvAdvice())


class Source:
  """One split, read by index. Subclasses set ``num_classes``, ``labeled`` and implement __len__ and read.

  ``bad_images`` (a ``jaxssl.data.bad_images.BadImages``, set by ``jaxssl.data.load`` and the run) makes
  ``read_substituted`` substitute unreadable images instead of raising ``BadImage``; ``read_timeout_s`` (from
  ``config.data.read_timeout_s``) bounds its wait; ``where`` names the split in its errors."""
  num_classes: int = 0
  labeled: bool = False
  class_names: tuple = ()          # the classes' names where the data has them (TFDS's, a folder's sub-folders)
  bad_images = None
  read_timeout_s: float = 0.0
  where: str = "the split"

  def __len__(self) -> int:
    raise NotImplementedError

  def read(self, indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, H, W, C] and int32 labels [n] of the examples at ``indices``."""
    raise NotImplementedError

  def read_substituted(self, indices: Sequence[int] | np.ndarray,
                       stop=None) -> tuple[np.ndarray, np.ndarray]:
    """``read`` with each unreadable image replaced by its substitute (``jaxssl.data.bad_images``), giving up
    after ``read_timeout_s`` (ReadTimeout) and stopping when ``stop()`` is true (Stopped): what every read
    outside the training pipeline uses (evaluation, the shape probe, the cache)."""
    return guarded(lambda: read_substituting(self.read, indices, len(self), self.bad_images), self.read_timeout_s,
                   f"reading {len(indices)} image(s) of {self.where}", stop)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.read_substituted([0])[0].shape[1:])

  def handles(self, indices: Sequence[int] | np.ndarray) -> tuple[list, np.ndarray]:
    """For the host crops (``host_crops.HostCropper``): one handle per example (a path, encoded bytes or a uint8
    array [H, W, C] at the image's own size) and the int32 labels [n]. By default the decoded images."""
    images, labels = self.read(indices)
    return list(images), labels

  def all(self, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Every example, in order (for in-memory caching and evaluation of small splits)."""
    parts = [self.read_substituted(np.arange(s, min(s + chunk, len(self)))) for s in range(0, len(self), chunk)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class ArraySource(Source):
  """An in-memory split: images uint8 [N, H, W, C] (or [N, H, W]), labels int [N] or None (unlabeled)."""

  def __init__(self, images: np.ndarray, labels: np.ndarray | None = None, num_classes: int | None = None):
    images = np.asarray(images)
    if images.ndim == 3:
      images = images[..., None]
    if images.ndim != 4 or images.dtype != np.uint8:
      raise DataError(f"images must be uint8 [N, H, W, C]; got {images.dtype} {images.shape}")
    if labels is not None and not np.issubdtype(np.asarray(labels).dtype, np.integer):
      raise DataError(f"labels must be integers; got {np.asarray(labels).dtype}")
    labels = np.full(len(images), -1, np.int32) if labels is None else np.asarray(labels, np.int32)
    if labels.shape != (len(images),):
      raise DataError(f"labels must be [N] = [{len(images)}]; got {labels.shape}")
    self.images, self.labels = images, labels
    self.labeled = bool(len(labels)) and bool(np.all(labels >= 0))
    self.num_classes = int(num_classes if num_classes is not None else (labels.max() + 1 if self.labeled else 0))

  def __len__(self) -> int:
    return len(self.images)

  def read(self, indices):
    indices = np.asarray(indices)
    return self.images[indices], self.labels[indices]

  @property
  def image_shape(self):
    return tuple(self.images.shape[1:])

  def all(self, chunk: int = 4096):
    return self.images, self.labels


def cached(source: Source) -> ArraySource:
  """The whole split read once into memory."""
  if isinstance(source, ArraySource):
    return source
  images, labels = source.all()
  out = ArraySource(images, labels, source.num_classes)
  out.labeled, out.class_names = source.labeled, source.class_names
  return out


def _resize_square(image: np.ndarray, size: int) -> np.ndarray:
  """Shorter side to ``size`` then a centred ``size`` x ``size`` crop (PIL, bicubic); uint8 [H, W, C] in and out."""
  from PIL import Image

  if image.shape[0] == size and image.shape[1] == size:
    return image
  channels = image.shape[-1]
  pil = Image.fromarray(image[..., 0] if channels == 1 else image)
  h, w = image.shape[:2]
  scale = size / min(h, w)
  pil = pil.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BICUBIC)
  left, top = (pil.width - size) // 2, (pil.height - size) // 2
  out = np.asarray(pil.crop((left, top, left + size, top + size)))
  return out[..., None] if out.ndim == 2 else out


class TfdsSource(Source):
  """A split of a prepared TFDS dataset, read through ``tfds`` random access (array_record), no TensorFlow.

  ``image_size`` > 0 resizes on the host (shorter side, then centre crop) for datasets whose images differ in
  size (ImageNet); 0 keeps the stored size, which must then be fixed.
  """

  def __init__(self, name: str, split: str, data_dir: str = "", image_size: int = 0,
               split_field: str = "data.train_split", field: str = "data"):
    import tensorflow_datasets as tfds

    _quiet_opencv_advice()
    try:
      builder = tfds.builder(name, data_dir=data_dir or None, try_gcs=False)
    except tfds.core.registered.DatasetNotFoundError:
      raise DataError(f"config.{field}.dataset={name!r} is not a TFDS dataset name (see `tfds.list_builders()`)"
                      ) from None
    where = data_dir or "TFDS's default data_dir"
    try:
      self._source = builder.as_data_source(split=split)
    except (AssertionError, FileNotFoundError, NotImplementedError, ValueError, KeyError, OSError) as e:
      if not builder.is_prepared():
        raise DataError(
            f"config.{field}.dataset={name!r} is not prepared in config.{field}.data_dir={data_dir!r} ({where}); "
            f"run `python -m jaxssl.data.prepare {name} --data_dir {data_dir or '~/tensorflow_datasets'}` "
            "(add --from DIR to build it offline from local files)") from None
      splits = ", ".join(sorted(builder.info.splits)) or "?"
      raise DataError(f"config.{split_field}={split!r}: this split of {name!r} cannot be read ({type(e).__name__}: "
                      f"{str(e).splitlines()[0][:200]}); prepared splits: {splits} (array_record)") from None
    features = builder.info.features
    self.labeled = "label" in features and not split.startswith("unlabel")
    self.num_classes = int(getattr(features["label"], "num_classes", 0) or 0) if "label" in features else 0
    self.class_names = tuple(getattr(features["label"], "names", None) or ()) if "label" in features else ()
    self.image_size = image_size
    self.name, self.split = name, split
    self._builder, self._encoded = builder, None

  def handles(self, indices):
    """The encoded image bytes (TFDS's SkipDecoding): the host crops decode them at the size they need."""
    import tensorflow_datasets as tfds

    if self._encoded is None:
      self._encoded = self._builder.as_data_source(split=self.split,
                                                   decoders={"image": tfds.decode.SkipDecoding()})
    examples = self._examples(self._encoded, indices)
    return [e["image"] for e in examples], self._labels(examples)

  def _labels(self, examples) -> np.ndarray:
    return np.asarray([int(e["label"]) if self.labeled else -1 for e in examples], np.int32)

  @staticmethod
  def _examples(source, indices) -> list:
    keys = [int(i) for i in np.asarray(indices)]
    try:
      return source.__getitems__(keys)                  # one batched read: ~3x faster than one at a time
    except TypeError:                                    # tfds.testing.mock_data's source reads one at a time
      return [source[k] for k in keys]

  def __len__(self) -> int:
    return len(self._source)

  def read(self, indices):
    examples = self._examples(self._source, indices)
    images = [np.asarray(e["image"]) for e in examples]
    images = [im[..., None] if im.ndim == 2 else im for im in images]
    if self.image_size:
      images = [_resize_square(im, self.image_size) for im in images]
    try:
      stacked = np.stack(images)
    except ValueError:
      raise DataError(f"config.data.image_size=0 but {self.name}:{self.split} has images of different sizes; "
                      "set config.data.image_size") from None
    return stacked.astype(np.uint8), self._labels(examples)


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class FolderSource(Source):
  """Images under ``root``: one sub-folder per class (labels = sorted folder index), or loose files (unlabeled).

  With ``labeled=False`` every image under ``root`` is read and labels are -1. Images are decoded with PIL,
  converted to ``channels`` (1: grayscale, 3: RGB) and resized to ``size`` x ``size`` (shorter side, centre crop).
  """

  def __init__(self, root: str, size: int, channels: int = 3, labeled: bool = True, field: str = "data.data_dir"):
    if not os.path.isdir(root):
      raise DataError(f"config.{field}={root!r} is not a directory of images")
    if size <= 0:
      raise DataError(f"config.data.image_size={size}: an image folder needs a positive size")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for label, name in enumerate(classes):
      for dirpath, _, files in sorted(os.walk(os.path.join(root, name))):
        for f in sorted(files):
          if f.lower().endswith(IMAGE_EXTENSIONS):
            paths.append(os.path.join(dirpath, f))
            labels.append(label if labeled else -1)
    for f in sorted(os.listdir(root)):
      if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(root, f)):
        paths.append(os.path.join(root, f))
        labels.append(-1)
    if not paths:
      raise DataError(f"config.{field}={root!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    self.paths, self.labels, self.classes = paths, np.asarray(labels, np.int32), classes
    self.labeled = labeled and bool(classes) and bool(np.all(self.labels >= 0))
    self.num_classes = len(classes) if self.labeled else 0
    self.class_names = tuple(classes) if self.labeled else ()
    self.size, self.channels = size, channels

  def __len__(self) -> int:
    return len(self.paths)

  def handles(self, indices):
    """The files' paths: the host crops open and decode them at the size they need."""
    indices = np.asarray(indices)
    return [self.paths[int(i)] for i in indices], self.labels[indices]

  def read(self, indices):
    from PIL import Image

    images = []
    for i in np.asarray(indices):
      try:
        with Image.open(self.paths[int(i)]) as im:
          array = np.asarray(to_mode(im, "L" if self.channels == 1 else "RGB"))
      except decode_errors() as e:
        raise BadImage(self.paths[int(i)], describe_decode_error(e), int(i)) from None
      images.append(_resize_square(array[..., None] if array.ndim == 2 else array, self.size))
    return np.stack(images), self.labels[np.asarray(indices)]


def synthetic(num_examples: int = 512, size: int = 28, channels: int = 1, num_classes: int = 10,
              seed: int = 0) -> ArraySource:
  """Random images whose class sets a bright square's position: learnable, tiny, and needs no files."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, num_classes, size=num_examples).astype(np.int32)
  images = rng.integers(0, 64, size=(num_examples, size, size, channels)).astype(np.uint8)
  cell = max(size // 4, 1)
  for i, label in enumerate(labels):
    r, c = divmod(int(label) % 16, 4)
    images[i, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = 255
  return ArraySource(images, labels, num_classes)
