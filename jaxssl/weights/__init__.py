"""Weights in and out of the PyTorch world: timm's and transformers' ViTs and torchvision-named ResNets read into
jaxssl's encoders, and jaxssl's written back in their layouts. ``load(SOURCE)`` is what ``jaxssl.load_encoder``
calls for anything that is not a jaxssl run directory.

    module, variables = jaxssl.load_encoder("weights/vit_small_patch14_reg4_dinov2")   # a timm hub folder
    features = module.apply(variables, images, train=False)                             # [N, D]

Today: timm ViTs (class token or not, registers, LayerScale, GELU or SwiGLU feed-forward, token or average
pooling, either position-embedding layout) and ResNets in torchvision's names (timm's, torchvision's, lightly's,
solo-learn's), from a hub folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) or a bare
``.safetensors`` / ``.npz`` / PyTorch file (a ViT's heads then named: ``num_heads=`` or ``arch=`` a timm name);
transformers' ViT, ViT-MAE, DINOv2 (with registers) and I-JEPA folders; Google's Flax ViTs in ``.npz`` (big_vision's
and the ViT paper's names, ``flax_vit``); export to timm's folder layout, transformers' and big_vision's npz
(``jaxssl.export``); the official MAE, DINO, iBOT, DINOv2 and I-JEPA checkpoints as their training
scripts save them (``jaxssl.weights.official``), PyTorch's files read without PyTorch (``torch_zip``).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from jaxssl.weights import files, flax_vit, official, timm_vit, torchvision_resnet, transformers_vit
from jaxssl.weights.files import WeightsError

__all__ = ["FORMATS", "WeightsError", "export", "export_timm", "is_jaxssl_run", "load"]


def is_jaxssl_run(path: str) -> bool:
  """Whether ``path`` is a jaxssl run directory (its config.json names a method), not a weights folder."""
  import json

  config = os.path.join(path, "config.json")
  if not os.path.isdir(path) or not os.path.isfile(config):
    return False
  try:
    with open(config) as f:
      return "method" in json.load(f)
  except (OSError, ValueError):
    return False


def load(source: str, num_heads: int | None = None, arch: str | None = None, pool: str | None = None,
         image_size: int | None = None, part: str | None = None, default_heads: int | None = None):
  """(module, variables) of the encoder in ``source`` (a weights file or hub folder), ready for
  ``module.apply(variables, images, train=False)`` -> features [N, D] equal to the source library's
  pre-logits features on the same normalised images [N, H, W, C].

  Args:
    num_heads, arch: the attention heads, or a timm architecture name that implies them, where the folder's
      config does not say (a bare file).
    default_heads: the heads where neither the file nor these say (a run's own ViT, ``model.encoder``).
    pool: override the features' pooling (``cls``, ``mean``, ``global``); default: the source's.
    image_size: the images to compute features of, when they are not those the position embeddings were made
      for: the table is resized to their grid once, here, as timm resizes it (``resample_abs_pos_embed``:
      PyTorch's antialiased bicubic, ``jaxssl.weights.adapt``).
    part: the entry of an official training checkpoint to read (default: the one the method evaluates, e.g.
      DINO's ``teacher``; ``jaxssl.weights.official``).
  """
  contents, config = files.read(source)
  return from_contents(contents, config, source, num_heads, arch, pool, image_size, part, default_heads)


def from_contents(contents: Any, config: dict | None, source: str, num_heads: int | None = None,
                  arch: str | None = None, pool: str | None = None, image_size: int | None = None,
                  part: str | None = None, default_heads: int | None = None):
  """``load`` of what ``files.read(source)`` gave: the file's contents and its folder's config.json."""
  if transformers_vit.is_transformers(config):             # a transformers folder: its own names
    tensors, config = transformers_vit.to_timm(contents, config, source)
  elif isinstance(contents, dict) and flax_vit.is_flax_vit(contents):   # big_vision's or the ViT paper's npz
    tensors, config = flax_vit.to_timm(contents, source)
  else:
    tensors = official.encoder_state_dict(contents, source, part)
  if arch:
    config = {**(config or {}), "architecture": arch}
  if torchvision_resnet.is_resnet(tensors):
    return _load_resnet(tensors, source)
  if not timm_vit.is_vit(tensors):
    shown = ", ".join(sorted(tensors)[:4])
    raise WeightsError(f"{source}: neither a timm ViT (patch_embed.proj.weight, blocks.*) nor a torchvision-named "
                       f"ResNet (conv1.weight, layer1.*) state dict; it has {shown}, ...")
  spec = timm_vit.spec(tensors, config, source, num_heads=num_heads, default_heads=default_heads)
  params = timm_vit.to_jaxssl(tensors, spec, source)
  channels = spec.pop("channels")
  if image_size and image_size // spec["patch_size"] != spec["base_grid"]:
    from jaxssl.weights import adapt

    grid, first = image_size // spec["patch_size"], int(spec["class_token"])
    pos = params["pos_embed"][0]
    params["pos_embed"] = np.concatenate([pos[:first], adapt.resize_positions(pos[first:], grid, antialias=True)])[None]
    spec["base_grid"] = grid
  if pool:
    spec["pool"] = pool
  from jaxssl.models.vit import ViT

  module = ViT(**spec)
  size = module.base_grid * module.patch_size
  variables = {"params": jax.tree.map(np.asarray, params), "batch_stats": {}}
  _check_shapes(module, variables, (1, size, size, channels), source)
  return module, variables


def _load_resnet(tensors: dict, source: str):
  from jaxssl.models.resnet import ResNet

  spec = torchvision_resnet.spec(tensors, source)
  channels = spec.pop("channels")
  params, stats = torchvision_resnet.to_jaxssl(tensors, spec, source)
  module = ResNet(**spec)
  variables = {"params": params, "batch_stats": stats}
  _check_shapes(module, variables, (1, 64, 64, channels), source)
  return module, variables


def _check_shapes(module, variables: dict, image_shape: tuple, where: str) -> None:
  """The imported variables against the shapes the module makes: the first difference, in one line."""
  import jax.numpy as jnp

  from jaxssl.runs.checkpoint import first_difference, shapes_by_path

  expected = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(image_shape), train=False))
  for collection in ("params", "batch_stats"):
    difference = first_difference(shapes_by_path(variables[collection]), shapes_by_path(expected.get(collection, {})))
    if difference:
      raise WeightsError(f"{where}: its tensors do not make the {type(module).__name__} their shapes describe "
                         f"({difference})")


FORMATS = ("timm", "transformers", "npz")


def export(module, variables: dict, out: str, channels: int, format: str = "timm") -> str:  # noqa: A002
  """Writes a jaxssl encoder in ``out`` (which must not exist) as ``format`` lays it out: ``timm``'s hub folder
  (ViTs and ResNets), ``transformers``' (``Dinov2Model``, ``Dinov2WithRegistersModel`` or ``IJepaModel``;
  ViTs) or big_vision's ``npz`` (one file, ``out`` ending in .npz; ViTs). Returns ``out``."""
  import json

  from jaxssl.models.vit import ViT

  if format == "timm":
    return export_timm(module, variables, out, channels)
  if format not in FORMATS:
    raise WeightsError(f"format={format!r}: use one of {', '.join(FORMATS)}")
  if not isinstance(module, ViT):
    holder = "transformers' folders hold" if format == "transformers" else "big_vision's npz holds"
    raise WeightsError(f"{out}: {holder} ViTs; this encoder is a {type(module).__name__} (export it to timm)")
  if format == "npz" and not out.endswith(".npz"):
    raise WeightsError(f"{out}: big_vision's format is one .npz file: name it so (e.g. {out}.npz)")
  if os.path.exists(out):
    raise WeightsError(f"{out} exists: export writes a new {'file' if format == 'npz' else 'folder'} (remove it, "
                       "or name another)")
  timm_tensors = timm_vit.from_jaxssl(jax.device_get(variables)["params"], module, class_position=True)
  if format == "npz":
    arrays = flax_vit.from_timm(timm_tensors, module)           # WeightsError before anything is written
    np.savez(out, **arrays)
    return out
  tensors, config = transformers_vit.from_timm(timm_tensors, module, channels)
  os.makedirs(out)
  files.write_safetensors(tensors, os.path.join(out, "model.safetensors"))
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
  return out


def export_timm(module, variables: dict, out: str, channels: int) -> str:
  """Writes a jaxssl ViT or ResNet as a timm hub folder (``config.json``, ``model.safetensors``) in ``out``, which
  must not exist. Returns ``out``."""
  import json

  from jaxssl.models.resnet import ResNet
  from jaxssl.models.vit import ViT

  if os.path.exists(out):
    raise WeightsError(f"{out} exists: export writes a new folder (remove it, or name another)")
  host = jax.device_get(variables)
  if isinstance(module, ViT):
    config = timm_vit.export_config(module, channels)
    tensors = timm_vit.from_jaxssl(host["params"], module)
  elif isinstance(module, ResNet):
    tensors = torchvision_resnet.from_jaxssl(host["params"], host.get("batch_stats", {}), module)
    config = torchvision_resnet.export_config(module, channels)
  else:
    raise WeightsError(f"{out}: jaxssl exports ViTs and ResNets; this encoder is a {type(module).__name__}")
  os.makedirs(out)
  files.write_safetensors(tensors, os.path.join(out, "model.safetensors"))
  with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)
  return out
