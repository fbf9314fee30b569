"""PyTorch's checkpoint files (``torch.save``'s zip format, since PyTorch 1.6) read without PyTorch and without
unpickling arbitrary objects: a restricted unpickler rebuilds tensors as NumPy arrays from the archive's
storages and accepts only plain containers (dicts, lists, tuples, numbers, strings), ``argparse.Namespace``
(as a dict: the official training scripts save their arguments so) and NumPy scalars. Anything else, a class
whose code would run, is refused with its name, as ``torch.load(weights_only=True)`` refuses it.
"""

from __future__ import annotations

import pickle
import zipfile
from typing import Any

import numpy as np

_STORAGES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
             "BFloat16Storage": "bfloat16", "LongStorage": np.int64, "IntStorage": np.int32,
             "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
_DTYPES = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "bfloat16": "bfloat16",
           "int64": np.int64, "int32": np.int32, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
           "bool": np.bool_}


class Refused(Exception):
  """The pickle names a class outside the allowed ones."""


class _Storage:
  def __init__(self, dtype: Any):
    self.dtype = dtype


class _Unpickler(pickle.Unpickler):
  def __init__(self, file, archive: zipfile.ZipFile, prefix: str):
    super().__init__(file)
    self.archive, self.prefix = archive, prefix
    self.loaded: dict[str, np.ndarray] = {}

  def find_class(self, module: str, name: str):
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
      return _rebuild_tensor
    if module == "torch._utils" and name == "_rebuild_parameter":
      return lambda data, requires_grad, hooks: data
    if module == "torch" and name in _STORAGES:
      return _Storage(_STORAGES[name])
    if module == "torch" and name in _DTYPES:
      return _Storage(_DTYPES[name])
    if module == "collections" and name == "OrderedDict":
      import collections
      return collections.OrderedDict
    if module == "argparse" and name == "Namespace":
      return _NamespaceType
    if module == "builtins" and name in ("set", "frozenset", "slice", "complex"):
      return {"set": set, "frozenset": frozenset, "slice": slice, "complex": complex}[name]
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
      return lambda dtype, data: np.frombuffer(data, dtype)[0]
    if module == "numpy" and name == "dtype":
      return np.dtype
    raise Refused(f"{module}.{name}")

  def persistent_load(self, pid):
    kind, storage_type, key, _location, _numel = pid
    if kind != "storage":
      raise Refused(f"persistent id {kind!r}")
    if key not in self.loaded:
      raw = self.archive.read(f"{self.prefix}/data/{key}")
      dtype = storage_type.dtype
      if dtype == "bfloat16":             # the upper half of float32
        words = np.frombuffer(raw, np.uint16).astype(np.uint32) << 16
        self.loaded[key] = words.view(np.float32)
      else:
        self.loaded[key] = np.frombuffer(raw, dtype)
    return self.loaded[key]


class _NamespaceType(dict):
  """argparse.Namespace, read as the dict of its attributes (pickle's BUILD hands them to __setstate__)."""

  def __setstate__(self, state):
    self.update(state if isinstance(state, dict) else {})


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *rest) -> np.ndarray:
  if not size:
    return storage[offset:offset + 1].reshape(()).copy()
  itemsize = storage.dtype.itemsize
  return np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                         strides=tuple(s * itemsize for s in stride)).copy()


def is_torch_zip(path: str) -> bool:
  return zipfile.is_zipfile(path)


def load(path: str) -> Any:
  """The contents of a ``torch.save`` zip file, tensors as NumPy arrays (bfloat16 as float32). Raises Refused
  for a pickle that needs other classes, zipfile.BadZipFile / KeyError / pickle errors for a damaged file."""
  with zipfile.ZipFile(path) as archive:
    pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pickles:
      raise KeyError("data.pkl")
    prefix = pickles[0].rsplit("/", 1)[0] if "/" in pickles[0] else ""
    with archive.open(pickles[0]) as f:
      unpickler = _Unpickler(f, archive, prefix)
      value = unpickler.load()
  return _plain(value)


def _plain(value: Any) -> Any:
  """Namespaces (set by pickle's BUILD on our placeholder dicts) and OrderedDicts as plain dicts."""
  if isinstance(value, dict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_plain(v) for v in value)
  return value
