"""Reader for the IDX format of MNIST and Fashion-MNIST (LeCun et al.; Xiao et al. 2017), gzipped or not."""

from __future__ import annotations

import gzip
import os

import numpy as np

FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file into an array of the shape its header gives. Raises ValueError on a malformed file."""
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
    raise ValueError(f"{path} is not an IDX file (bad magic number)")
  ndim = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
  dtype = np.dtype(_DTYPES[raw[2]])
  body = raw[4 + 4 * ndim:]
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(body) != expected:
    raise ValueError(f"{path}: header says {shape} ({expected} bytes) but the file holds {len(body)} bytes")
  return np.frombuffer(body, dtype=dtype).reshape(shape)


def find_file(directory: str, stem: str) -> str | None:
  """The path of ``stem`` or ``stem.gz`` in ``directory``, or None."""
  for name in (stem + ".gz", stem):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None


def load_fashion_mnist(directory: str) -> dict[str, np.ndarray]:
  """The four Fashion-MNIST arrays: images uint8 [N, 28, 28, 1], labels int32 [N]."""
  arrays = {}
  for key, stem in FASHION_MNIST_FILES.items():
    path = find_file(directory, stem)
    if path is None:
      raise FileNotFoundError(f"{directory} has no {stem}[.gz]")
    array = read_idx(path)
    arrays[key] = array[..., None] if key.endswith("images") else array.astype(np.int32)
  return arrays
