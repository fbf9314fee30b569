"""Tensors from the files the PyTorch world saves weights in, as NumPy arrays by name, never by unpickling code.

- ``.safetensors``: read without PyTorch (``safetensors.numpy``);
- ``.npz``: NumPy's archive (big_vision's layout, or any name -> array map), objects refused;
- ``.pth`` / ``.pt`` / ``.bin`` / ``.pth.tar``: ``torch.save``'s zip format read here without PyTorch
  (``jaxssl.weights.torch_zip``: tensors, plain containers and ``argparse.Namespace`` only; a pickle that needs
  other code is refused); the legacy format through PyTorch when it is installed, with ``weights_only=True``,
  else one line that says how to convert the file;
- a folder as the hub stores one: ``config.json`` beside ``model.safetensors`` or ``pytorch_model.bin``.

Every problem is a ``WeightsError`` with one line naming the file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from jaxssl.runs.checkpoint import CheckpointError

TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".pth.tar", ".ckpt")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors")


class WeightsError(CheckpointError):
  """Weights that cannot be read or do not fit; the message is one line and names the file."""


def read(path: str) -> tuple[dict[str, Any], dict | None]:
  """(the file's contents, the folder's config.json or None). Contents: a name -> array map for safetensors and
  npz; for torch files whatever the pickle holds (a state dict, or a dict of them: ``{"model": ...}``)."""
  if os.path.isdir(path):
    config = _config(path)
    for name in WEIGHT_FILES:
      if os.path.isfile(os.path.join(path, name)):
        return read_file(os.path.join(path, name)), config
    raise WeightsError(f"{path}: a folder without weights (none of {', '.join(WEIGHT_FILES)})")
  if not os.path.isfile(path):
    raise WeightsError(f"{path}: no such file or folder")
  return read_file(path), None


def _config(folder: str) -> dict | None:
  path = os.path.join(folder, "config.json")
  if not os.path.isfile(path):
    return None
  try:
    with open(path) as f:
      config = json.load(f)
  except (OSError, ValueError) as e:
    raise WeightsError(f"{path}: not a readable JSON file ({type(e).__name__}: {' '.join(str(e).split())})") from None
  if not isinstance(config, dict):
    raise WeightsError(f"{path}: holds a {type(config).__name__}, not a JSON object")
  return config


def read_file(path: str) -> dict[str, Any]:
  lower = path.lower()
  if lower.endswith(".safetensors"):
    return _safetensors(path)
  if lower.endswith(".npz"):
    return _npz(path)
  if lower.endswith(TORCH_SUFFIXES):
    return _torch(path)
  raise WeightsError(f"{path}: unknown weights file type (use .safetensors, .npz, or a PyTorch "
                     f"{', '.join(TORCH_SUFFIXES)} file)")


def _safetensors(path: str) -> dict[str, np.ndarray]:
  from safetensors import SafetensorError
  from safetensors.numpy import load_file

  try:
    return dict(load_file(path))
  except (SafetensorError, OSError, ValueError) as e:
    raise WeightsError(f"{path}: not a readable safetensors file ({' '.join(str(e).split())[:160]}): truncated or "
                       "damaged?") from None
  except TypeError as e:              # a dtype NumPy has no type for (bfloat16 in old safetensors)
    raise WeightsError(f"{path}: {' '.join(str(e).split())[:160]}") from None


def _npz(path: str) -> dict[str, np.ndarray]:
  try:
    with np.load(path, allow_pickle=False) as archive:
      if not hasattr(archive, "files"):
        raise ValueError("an .npy array, not an .npz archive of named arrays")
      return {name: archive[name] for name in archive.files}
  except (OSError, ValueError, EOFError) as e:
    why = "it holds Python objects, which are never unpickled" if "pickle" in str(e) else " ".join(str(e).split())
    raise WeightsError(f"{path}: not a readable .npz archive ({why[:160]})") from None


def _torch(path: str) -> Any:
  from jaxssl.weights import torch_zip

  if torch_zip.is_torch_zip(path):          # torch.save's format since PyTorch 1.6: read here, no PyTorch needed
    import pickle
    import zipfile

    try:
      return torch_zip.load(path)
    except torch_zip.Refused as e:
      raise WeightsError(f"{path}: its pickle needs {e} to load, which jaxssl never unpickles (only tensors, plain "
                         "containers and argparse.Namespace): save its state dict alone (torch.save(model."
                         "state_dict(), ...)) or as safetensors") from None
    except (zipfile.BadZipFile, KeyError, pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
      raise WeightsError(f"{path}: not a readable PyTorch file ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]}): truncated or damaged?") from None
  with open(path, "rb") as f:
    if f.read(4) == b"PK\x03\x04":          # a zip archive whose directory cannot be found: cut short
      raise WeightsError(f"{path}: not a readable PyTorch file (a zip archive without its central directory): "
                         "truncated or damaged?")
  try:
    import torch
  except ImportError:
    raise WeightsError(f"{path}: a PyTorch file, and PyTorch is not installed here; install it (pip install torch), "
                       "or convert the file where it is: python -c \"import torch, safetensors.torch as s; "
                       f"s.save_file(torch.load('{os.path.basename(path)}', weights_only=True), 'model.safetensors')\" "
                       "(a state dict of tensors)") from None
  try:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001 -- torch raises many types (UnpicklingError for code, RuntimeError for damage)
    text = " ".join(str(e).split())
    if "weights_only" in text or "Unsupported global" in text or "UnpicklingError" in type(e).__name__:
      raise WeightsError(f"{path}: its pickle needs code beyond tensors to load ({text[:160]}); jaxssl never "
                         "unpickles arbitrary objects: save its state dict alone (torch.save(model.state_dict(), ...)) "
                         "or as safetensors") from None
    raise WeightsError(f"{path}: not a readable PyTorch file ({type(e).__name__}: {text[:160]}): truncated or "
                       "damaged?") from None
  return _to_numpy(loaded)


def _to_numpy(value: Any) -> Any:
  """Tensors to NumPy arrays (bfloat16 through float32), containers kept."""
  import torch

  if isinstance(value, torch.Tensor):
    tensor = value.detach().cpu()
    if tensor.dtype == torch.bfloat16:
      tensor = tensor.float()
    return tensor.numpy()
  if isinstance(value, dict):
    return {k: _to_numpy(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(_to_numpy(v) for v in value)
  return value


class Taker:
  """Hands out a state dict's tensors by name (float32) and remembers which: what is ``left`` afterwards is what
  the target model has no place for."""

  def __init__(self, tensors: dict[str, np.ndarray], where: str):
    self.tensors, self.where, self.used = tensors, where, set()

  def __call__(self, name: str) -> np.ndarray:
    if name not in self.tensors:
      raise WeightsError(f"{self.where}: no tensor {name!r}")
    self.used.add(name)
    return np.asarray(self.tensors[name], np.float32)

  def refuse_left(self, model: str, ignored=lambda name: False) -> None:
    """Raises WeightsError naming the tensors nobody took (but those ``ignored``: a classifier head, counters)."""
    left = sorted(k for k in self.tensors if k not in self.used and not ignored(k))
    if left:
      raise WeightsError(f"{self.where}: {len(left)} tensor(s) that jaxssl's {model} has no place for, e.g. "
                         f"{', '.join(left[:4])} (another architecture?)")


def write_safetensors(tensors: dict[str, np.ndarray], path: str) -> None:
  """Writes a name -> array map as safetensors (contiguous copies: the format stores raw buffers)."""
  from safetensors.numpy import save_file

  save_file({k: np.array(v, order="C", copy=True) for k, v in tensors.items()}, path)   # keeps 0-d arrays 0-d
