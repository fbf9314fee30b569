"""The official repositories' checkpoints, as their training scripts save them, reduced to the encoder's state
dict in timm's names:

- MAE (``main_pretrain.py``: ``{"model", "optimizer", "epoch", "args", ...}``): ``model`` without its decoder
  (``decoder_*``) and mask token;
- DINO and iBOT (``{"student", "teacher", ...}``, the student under DDP's ``module.``): the teacher's
  ``backbone.`` (its heads and iBOT's ``masked_embed`` left out); released backbones are plain state dicts;
- DINOv2 (released backbones; training checkpoints' ``teacher`` with ``backbone.``): ``register_tokens``,
  ``mlp.w12`` / ``mlp.w3`` (SwiGLU) and chunked blocks (``blocks.C.N.``) renamed to timm's, its mask token
  left out;
- I-JEPA (``src/train.py``: ``{"encoder", "predictor", "target_encoder", ...}``, under ``module.``): the
  target encoder, which the paper evaluates (no class token: its features are the mean patch token).

``part`` picks another entry (``student``, ``encoder``).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from jaxssl.weights.files import WeightsError

# Where the encoder is, in the order the official scripts' checkpoints are searched.
ENTRIES = ("target_encoder", "teacher", "model", "state_dict", "model_state", "encoder", "student", "module")
DROPPED = re.compile(r"^(mask_token|masked_embed|decoder_.*|head\..*|heads\..*|dino_head\..*|ibot_head\..*|"
                     r"pred(ictor)?_.*|last_layer.*)$")


def _arrays(value: Any) -> bool:
  return isinstance(value, dict) and bool(value) and all(isinstance(v, np.ndarray) for v in value.values())


def encoder_state_dict(contents: Any, where: str, part: str | None = None) -> dict[str, np.ndarray]:
  """The encoder's tensors inside a file's contents, in timm's names."""
  return rename(entry(contents, where, part))


def mae_decoder(contents: Any, where: str) -> dict[str, np.ndarray]:
  """MAE's decoder in a file's contents (``models_mae.py``'s ``decoder_*`` and ``mask_token``, ``module.``
  stripped); empty where the file has none (a released encoder, or not MAE's)."""
  tensors = {re.sub(r"^(module\.)+", "", k): v for k, v in entry(contents, where).items()}
  decoder = {k: v for k, v in tensors.items() if k.startswith("decoder_")}
  if decoder and "mask_token" in tensors:
    decoder["mask_token"] = tensors["mask_token"]
  return decoder


def entry(contents: Any, where: str, part: str | None = None) -> dict[str, np.ndarray]:
  """The state dict a file's contents hold (``part``'s, or the first of ``ENTRIES`` found), names unchanged."""
  if part:
    if not isinstance(contents, dict) or not _arrays(contents.get(part)):
      shown = ", ".join(sorted(contents)) if isinstance(contents, dict) else type(contents).__name__
      raise WeightsError(f"{where}: no state dict under {part!r} (it holds: {shown})")
    tensors = contents[part]
  elif _arrays(contents):
    tensors = contents
  else:
    found = [e for e in ENTRIES if isinstance(contents, dict) and _arrays(contents.get(e))]
    if not found:
      shown = ", ".join(list(contents)[:8]) if isinstance(contents, dict) else type(contents).__name__
      raise WeightsError(f"{where}: no state dict of arrays in it (it holds: {shown})")
    tensors = contents[found[0]]
  return tensors


def rename(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """DDP's ``module.`` and the method's ``backbone.`` stripped (what is outside ``backbone.`` is a head), the
  DINOv2 names made timm's, heads, decoders and mask tokens left out."""
  tensors = {re.sub(r"^(module\.)+", "", k): v for k, v in tensors.items()}
  for prefix in ("backbone.", "teacher.backbone."):
    if any(k.startswith(prefix) for k in tensors) and not any(k.startswith("blocks.") for k in tensors):
      tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
      break
  out = {}
  for name, value in tensors.items():
    if DROPPED.match(name):
      continue
    name = re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", name)       # DINOv2's chunked blocks
    name = name.replace("register_tokens", "reg_token").replace(".mlp.w12.", ".mlp.fc1.")
    name = name.replace(".mlp.w3.", ".mlp.fc2.")
    out[name] = value
  return out
