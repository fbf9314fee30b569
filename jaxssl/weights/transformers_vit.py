"""transformers' ViT families (``ViTModel``, ``ViTMAEModel``, ``Dinov2Model``, ``Dinov2WithRegistersModel``,
``IJepaModel``), as ``save_pretrained`` writes them (``config.json`` + ``model.safetensors``, the names of the
hub's files), renamed to timm's names, which ``jaxssl.weights.timm_vit`` reads; and jaxssl's ViTs written back
as ``Dinov2Model`` / ``Dinov2WithRegistersModel`` (a class token) or ``IJepaModel`` (none) folders.

Their features as jaxssl reads them: the class token after the final layernorm (``pooler_output`` of DINOv2,
``last_hidden_state[:, 0]`` of ViT and ViT-MAE), or the mean of the final layernorm's tokens (I-JEPA). The
ViT and ViT-MAE configs' layernorm epsilon (1e-12) differs from jaxssl's (1e-6), which moves features by about
1e-7 of their scale.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from jaxssl.weights.files import WeightsError

MODEL_TYPES = ("vit", "vit_mae", "dinov2", "dinov2_with_registers", "ijepa")

_LAYER = {  # transformers' names inside encoder.layer.N -> timm's inside blocks.N
    "norm1": "norm1", "norm2": "norm2", "layernorm_before": "norm1", "layernorm_after": "norm2",
    "attention.output.dense": "attn.proj", "intermediate.dense": "mlp.fc1", "output.dense": "mlp.fc2",
    "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2", "mlp.weights_in": "mlp.fc1", "mlp.weights_out": "mlp.fc2",
}


def is_transformers(config: dict | None) -> bool:
  return isinstance(config, dict) and config.get("model_type") in MODEL_TYPES


def to_timm(tensors: dict[str, np.ndarray], config: dict, where: str) -> tuple[dict[str, np.ndarray], dict]:
  """(the state dict in timm's names, a timm-like config: heads, image size, pooling)."""
  if config.get("model_type") == "vit_mae" and any(k.startswith("decoder.") for k in tensors):
    tensors = {k.removeprefix("vit."): v for k, v in tensors.items() if not k.startswith("decoder.")}
  tensors = {k.removeprefix("dinov2.").removeprefix("vit.").removeprefix("ijepa."): v for k, v in tensors.items()}
  out: dict[str, np.ndarray] = {}
  qkv: dict[tuple[int, str, str], np.ndarray] = {}
  left = []
  for name, value in tensors.items():
    match = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias|lambda1)", name)
    if match:
      index, inner, kind = int(match.group(1)), match.group(2), match.group(3)
      attention = re.fullmatch(r"attention\.attention\.(query|key|value)", inner)
      if attention:
        qkv[(index, attention.group(1), kind)] = value
      elif inner in ("layer_scale1", "layer_scale2"):
        out[f"blocks.{index}.ls{inner[-1]}.gamma"] = value
      elif inner in _LAYER:
        out[f"blocks.{index}.{_LAYER[inner]}.{kind}"] = value
      else:
        left.append(name)
      continue
    simple = {"embeddings.cls_token": "cls_token", "embeddings.register_tokens": "reg_token",
              "embeddings.position_embeddings": "pos_embed",
              "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
              "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
              "layernorm.weight": "norm.weight", "layernorm.bias": "norm.bias"}
    if name in simple:
      out[simple[name]] = value
    elif not name.startswith(("embeddings.mask_token", "pooler.")):
      left.append(name)
  if left:
    raise WeightsError(f"{where}: {len(left)} tensor(s) of this {config.get('model_type')} model that jaxssl's ViT "
                       f"has no place for, e.g. {', '.join(sorted(left)[:4])}")
  for index in sorted({i for i, _, _ in qkv}):
    for kind in ("weight", "bias"):
      parts = [qkv.get((index, part, kind)) for part in ("query", "key", "value")]
      if all(p is not None for p in parts):
        out[f"blocks.{index}.attn.qkv.{kind}"] = np.concatenate(parts, axis=0)
  size = config.get("image_size")
  timm_like = {"model_args": {"num_heads": config.get("num_attention_heads"),
                              "img_size": size[0] if isinstance(size, (list, tuple)) else size},
               "global_pool": "avg" if config.get("model_type") == "ijepa" else "token"}
  return out, timm_like


def from_timm(tensors: dict[str, np.ndarray], module, channels: int) -> tuple[dict[str, np.ndarray], dict]:
  """(the state dict in transformers' names, its config.json) of a jaxssl ViT, given its timm state dict
  (``timm_vit.from_jaxssl(..., class_position=True)``: the class token's position row kept, registers without
  one, as DINOv2 lays them out)."""
  if module.pool == "global":
    raise WeightsError("a ViT pooled through fc_norm (model.pool='global') has no transformers counterpart: "
                       "not exported")
  if not module.class_token and (module.num_registers or module.layer_scale or module.mlp != "gelu"
                                 or module.pool != "mean"):
    raise WeightsError("a ViT without a class token is written as IJepaModel, which has no registers, LayerScale, "
                       "SwiGLU or other pool than the mean: not exported")
  if module.class_token and module.pool != "cls":
    raise WeightsError(f"a ViT with a class token pooled by {module.pool!r}: transformers' DINOv2 gives the class "
                       "token (pooler_output); export it with model.pool='cls', or to timm")
  d, hidden = module.dim, None
  out = {}
  for name, value in tensors.items():
    block = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if block:
      index, inner = block.groups()
      prefix = f"encoder.layer.{index}"
      if inner.startswith("attn.qkv."):
        kind = inner.split(".")[-1]
        for part, piece in zip(("query", "key", "value"), np.split(value, 3, axis=0)):
          out[f"{prefix}.attention.attention.{part}.{kind}"] = piece
        continue
      renamed = {"attn.proj": "attention.output.dense", "norm1": "norm1", "norm2": "norm2"}
      head, kind = inner.rsplit(".", 1)
      if head in ("ls1", "ls2"):
        out[f"{prefix}.layer_scale{head[-1]}.lambda1"] = value
      elif head in ("mlp.fc1", "mlp.fc2"):
        swiglu = module.mlp == "swiglu"
        if module.class_token:
          target = {"mlp.fc1": "mlp.weights_in", "mlp.fc2": "mlp.weights_out"}[head] if swiglu else head
        else:
          target = {"mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}[head]
        out[f"{prefix}.{target}.{kind}"] = value
        if head == "mlp.fc2" and kind == "weight":
          hidden = value.shape[1]
      elif head in renamed:
        name_here = renamed[head]
        if not module.class_token:
          name_here = {"norm1": "layernorm_before", "norm2": "layernorm_after"}.get(head, name_here)
        out[f"{prefix}.{name_here}.{kind}"] = value
      continue
    simple = {"cls_token": "embeddings.cls_token", "reg_token": "embeddings.register_tokens",
              "pos_embed": "embeddings.position_embeddings", "patch_embed.proj.weight":
              "embeddings.patch_embeddings.projection.weight", "patch_embed.proj.bias":
              "embeddings.patch_embeddings.projection.bias", "norm.weight": "layernorm.weight",
              "norm.bias": "layernorm.bias"}
    out[simple[name]] = value
  size = module.base_grid * module.patch_size
  common = {"hidden_size": d, "num_hidden_layers": module.depth, "num_attention_heads": module.num_heads,
            "image_size": size, "patch_size": module.patch_size, "num_channels": channels,
            "qkv_bias": module.qkv_bias, "layer_norm_eps": 1e-6, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0}
  if not module.class_token:
    return out, {**common, "model_type": "ijepa", "architectures": ["IJepaModel"], "intermediate_size": hidden}
  for index in range(module.depth):
    if module.layer_scale == 0.0:                        # DINOv2 always scales its branches: by one
      for part in ("1", "2"):
        out[f"encoder.layer.{index}.layer_scale{part}.lambda1"] = np.ones(d, np.float32)
  out["embeddings.mask_token"] = np.zeros((1, d), np.float32)   # iBOT's, unused by the features
  if module.mlp == "swiglu":
    if hidden % 8:
      raise WeightsError(f"a SwiGLU feed-forward {hidden} wide: transformers' DINOv2 makes multiples of 8 only")
    ratio = 1.5 * hidden / d                                 # (int(int(d * ratio) * 2 / 3) + 7) // 8 * 8 == hidden
  else:
    ratio = hidden / d
  if ratio != int(ratio):                                  # transformers' DINOv2 takes an integer ratio
    raise WeightsError(f"a feed-forward {hidden} wide on {d} channels: transformers' DINOv2 takes whole MLP ratios "
                       "only: not exported (export it to timm)")
  ratio = int(ratio)
  registered = module.num_registers > 0
  config: dict[str, Any] = {**common, "model_type": "dinov2_with_registers" if registered else "dinov2",
                            "architectures": ["Dinov2WithRegistersModel" if registered else "Dinov2Model"],
                            "mlp_ratio": ratio, "use_swiglu_ffn": module.mlp == "swiglu", "layerscale_value": 1.0,
                            "drop_path_rate": 0.0}
  if registered:
    config["num_register_tokens"] = module.num_registers
  return out, config
