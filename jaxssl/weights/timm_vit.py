"""timm's ``VisionTransformer`` state dicts (``models/vision_transformer.py``) to jaxssl's ViT and back.

The names map one to one (``blocks.3.attn.qkv.weight`` <-> ``block_3/attn/qkv/kernel``, transposed); what needs
care is where the prefix tokens get their positions:

- timm's classic layout (``no_embed_class=False``): ``pos_embed`` holds a row for the class token (and for
  registers, if any) before the patches' rows;
- DINOv2 with registers and other ``no_embed_class=True`` models: ``pos_embed`` holds the patches' rows only;
  the class token and registers have no position.

jaxssl's ViT keeps a row for the class token (zero where the source has none: the same sum) and gives registers
none (a source's register rows are added to the register tokens: the same sum again). Export writes the classic
layout without registers and ``no_embed_class`` with them (the class token's row added to the class token).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from jaxssl.weights.files import Taker, WeightsError

# timm's ViT sizes by name, for the heads a state dict cannot show (qkv is [3D, D] for any number of heads).
HEADS_BY_SIZE = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16, "giant": 24, "gigantic": 16}
# And by width, for a bare file: every published ViT of these widths (DeiT, MAE, DINO, iBOT, DINOv2, I-JEPA) has
# these heads.
HEADS_BY_WIDTH = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1536: 24}


def is_vit(tensors: dict[str, Any]) -> bool:
  return "patch_embed.proj.weight" in tensors and any(k.startswith("blocks.0.") for k in tensors)


def _heads(config: dict | None, dim: int, where: str, num_heads: int | None, default_heads: int | None) -> int:
  args = (config or {}).get("model_args", {}) or {}
  if num_heads:
    return int(num_heads)
  if args.get("num_heads"):
    return int(args["num_heads"])
  architecture = (config or {}).get("architecture", "")
  size = re.match(r"(?:vit|deit3?|eva02?)_(\w+?)_patch", architecture or "")
  if size and size.group(1) in HEADS_BY_SIZE:
    return HEADS_BY_SIZE[size.group(1)]
  if dim in HEADS_BY_WIDTH and not architecture:
    return HEADS_BY_WIDTH[dim]
  if default_heads:
    return int(default_heads)
  raise WeightsError(f"{where}: its number of attention heads is not in its shapes; name it (num_heads=, or a timm "
                     f"architecture such as vit_base_patch16_224 in arch=)")


def spec(tensors: dict[str, np.ndarray], config: dict | None, where: str,
         num_heads: int | None = None, default_heads: int | None = None) -> dict[str, Any]:
  """The jaxssl ViT's fields for a timm ViT state dict (and its hub config.json, when there is one).
  ``num_heads`` overrides what the file says of its heads; ``default_heads`` is used where it says nothing."""
  d, c, p, p2 = tensors["patch_embed.proj.weight"].shape
  if p != p2:
    raise WeightsError(f"{where}: patch_embed.proj.weight has {p}x{p2} patches; jaxssl's ViT cuts square ones")
  depth = 1 + max(int(k.split(".")[1]) for k in tensors if k.startswith("blocks."))
  heads = _heads(config, d, where, num_heads, default_heads)
  if d % heads:
    raise WeightsError(f"{where}: width {d} is not divisible by {heads} heads (num_heads=)")
  fc1, fc2 = tensors["blocks.0.mlp.fc1.weight"].shape, tensors["blocks.0.mlp.fc2.weight"].shape
  swiglu = fc1[0] == 2 * fc2[1]
  if not swiglu and fc1[0] != fc2[1]:
    raise WeightsError(f"{where}: blocks.0.mlp.fc1 ({fc1}) and fc2 ({fc2}) fit neither an MLP nor a packed SwiGLU")
  class_token = "cls_token" in tensors
  registers = int(tensors["reg_token"].shape[1]) if "reg_token" in tensors else 0
  positions = int(tensors["pos_embed"].shape[1]) if "pos_embed" in tensors else 0
  prefix = int(class_token) + registers
  grid = _grid(positions, prefix, config, p, where)
  global_pool = (config or {}).get("global_pool") or ("token" if class_token else "avg")
  if global_pool == "token":
    pool = "cls"
  elif global_pool == "avg":
    pool = "global" if "fc_norm.weight" in tensors else "mean"
  else:
    raise WeightsError(f"{where}: global_pool={global_pool!r}; jaxssl reads the class token ('token') or the mean "
                       "patch token ('avg')")
  return {"patch_size": int(p), "dim": int(d), "depth": depth, "num_heads": heads, "mlp_ratio": fc1[0] / d,
          "base_grid": grid, "qkv_bias": "blocks.0.attn.qkv.bias" in tensors, "pos_embed": "learned", "pool": pool,
          "class_token": class_token, "num_registers": registers,
          "layer_scale": 1e-5 if "blocks.0.ls1.gamma" in tensors else 0.0, "mlp": "swiglu" if swiglu else "gelu",
          "channels": int(c)}


def _grid(positions: int, prefix: int, config, patch: int, where: str) -> int:
  """The side of the patch grid the position embeddings were made for (with or without prefix rows)."""
  args = (config or {}).get("model_args", {}) or {}
  size = args.get("img_size")
  if isinstance(size, (list, tuple)):
    if size[0] != size[-1]:
      raise WeightsError(f"{where}: img_size={size}; jaxssl's ViT is made for square grids")
    size = size[0]
  # The table's prefix rows: none (no_embed_class), the class token's only (DINOv2's and transformers' layout
  # with registers), or every prefix token's (timm's classic layout).
  for rows in sorted({positions - prefix, positions - min(prefix, 1), positions}):
    side = math.isqrt(max(rows, 0))
    if side * side == rows and rows > 0 and (not size or side == size // patch):
      return side
  raise WeightsError(f"{where}: pos_embed has {positions} rows, which fit no square patch grid"
                     + (f" of {size} px images in {patch} px patches" if size else ""))


def to_jaxssl(tensors: dict[str, np.ndarray], s: dict[str, Any], where: str) -> dict:
  """jaxssl ViT parameters from a timm state dict (``s``: ``spec``'s fields). Every tensor of the encoder is
  used; a classifier head (``head.*``) is left out."""
  take = Taker(tensors, where)
  norm = lambda prefix: {"scale": take(f"{prefix}.weight"), "bias": take(f"{prefix}.bias")}   # noqa: E731
  d, grid, registers = s["dim"], s["base_grid"], s["num_registers"]
  params: dict[str, Any] = {"patch_embed": {"kernel": take("patch_embed.proj.weight").transpose(2, 3, 1, 0),
                                            "bias": take("patch_embed.proj.bias")}}
  pos = take("pos_embed")[0]
  prefix_rows = pos.shape[0] - grid * grid      # 0 (no_embed_class), 1 (the class token's), or every prefix's
  first = int(s["class_token"])
  patch_pos = pos[prefix_rows:]
  if s["class_token"]:
    params["cls_token"] = take("cls_token")
    cls_pos = pos[:1] if prefix_rows else np.zeros((1, d), np.float32)
    params["pos_embed"] = np.concatenate([cls_pos, patch_pos])[None]
  else:
    params["pos_embed"] = patch_pos[None]
  if registers:
    reg = take("reg_token")
    if prefix_rows == first + registers:                # the registers' own rows, folded into them
      reg = reg + pos[first:first + registers][None]
    params["reg_token"] = reg
  for i in range(s["depth"]):
    params[f"block_{i}"] = block_params(take, f"blocks.{i}", bool(s["layer_scale"]))
  params["fc_norm" if s["pool"] == "global" else "norm"] = norm("fc_norm" if s["pool"] == "global" else "norm")
  take.refuse_left("ViT", ignored=lambda name: name.startswith("head."))
  return params


def block_params(take: Taker, b: str, layer_scale: bool = False) -> dict:
  """One jaxssl ``Block``'s parameters from timm's ``Block`` named ``b`` (``blocks.3``, MAE's
  ``decoder_blocks.0``)."""
  def dense(prefix):
    bias = {"bias": take(f"{prefix}.bias")} if f"{prefix}.bias" in take.tensors else {}
    return {"kernel": take(f"{prefix}.weight").T, **bias}

  norm = lambda prefix: {"scale": take(f"{prefix}.weight"), "bias": take(f"{prefix}.bias")}   # noqa: E731
  block = {"norm1": norm(f"{b}.norm1"), "attn": {"qkv": dense(f"{b}.attn.qkv"), "proj": dense(f"{b}.attn.proj")},
           "norm2": norm(f"{b}.norm2"), "mlp": {"fc1": dense(f"{b}.mlp.fc1"), "fc2": dense(f"{b}.mlp.fc2")}}
  if layer_scale:
    block["ls1"], block["ls2"] = {"gamma": take(f"{b}.ls1.gamma")}, {"gamma": take(f"{b}.ls2.gamma")}
  return block


def from_jaxssl(params: dict, module, class_position: bool = False) -> dict[str, np.ndarray]:
  """The timm state dict of a jaxssl ViT (``module``: its ``ViT``; blocks one by one, not scanned), in the
  layout ``export_config`` describes; with ``class_position`` the class token's row stays in the table even
  with registers (DINOv2's and transformers' layout)."""
  from jaxssl.models.vit import sincos_pos_embed_2d, unstack_blocks

  if module.pos_embed == "rope":
    raise WeightsError("a ViT with pos_embed='rope' (DINOv3's rotary embedding) has no position table for timm's "
                       "or transformers' ViT: export it as flax")
  if "blocks" in params:
    params = unstack_blocks(params)
  a = lambda x: np.asarray(x, np.float32)                      # noqa: E731
  out = {"patch_embed.proj.weight": a(params["patch_embed"]["kernel"]).transpose(3, 2, 0, 1),
         "patch_embed.proj.bias": a(params["patch_embed"]["bias"])}
  grid = (module.base_grid, module.base_grid)
  if module.pos_embed == "sincos":
    pos = sincos_pos_embed_2d(module.dim, grid, cls_token=module.class_token)[None]
  else:
    pos = a(params["pos_embed"])
  if module.class_token:
    cls = a(params["cls_token"])
    if module.num_registers and not class_position:   # no_embed_class: the class row goes into the token
      cls = cls + pos[:, :1]
      pos = pos[:, 1:]
    out["cls_token"] = cls
  if module.num_registers:
    out["reg_token"] = a(params["reg_token"])
  out["pos_embed"] = pos
  for i in range(module.depth):
    block, b = params[f"block_{i}"], f"blocks.{i}"
    for name in ("norm1", "norm2"):
      out[f"{b}.{name}.weight"], out[f"{b}.{name}.bias"] = a(block[name]["scale"]), a(block[name]["bias"])
    for name, layer in (("attn.qkv", block["attn"]["qkv"]), ("attn.proj", block["attn"]["proj"]),
                        ("mlp.fc1", block["mlp"]["fc1"]), ("mlp.fc2", block["mlp"]["fc2"])):
      out[f"{b}.{name}.weight"] = a(layer["kernel"]).T
      if "bias" in layer:
        out[f"{b}.{name}.bias"] = a(layer["bias"])
    if module.layer_scale:
      out[f"{b}.ls1.gamma"], out[f"{b}.ls2.gamma"] = a(block["ls1"]["gamma"]), a(block["ls2"]["gamma"])
  norm = "fc_norm" if module.pool == "global" else "norm"
  out[f"{norm}.weight"], out[f"{norm}.bias"] = a(params[norm]["scale"]), a(params[norm]["bias"])
  return out


def _timm_ratio(dim: int, ratio: float) -> float:
  """The ``mlp_ratio`` from which timm's ``int(dim * mlp_ratio)`` gives this feed-forward's width back (a ratio
  read off shapes, 8192 / 1536, would give 8191)."""
  from jaxssl.models.vit import mlp_width

  hidden = mlp_width(dim, ratio)
  return ratio if int(dim * ratio) == hidden else (hidden + 0.5) / dim


def export_config(module, channels: int) -> dict:
  """timm's hub ``config.json`` for ``from_jaxssl``'s state dict: an architecture timm knows and the
  ``model_args`` that make it this ViT, so that ``timm.create_model(architecture, pretrained=True,
  pretrained_cfg_overlay={"file": ...}, **model_args)`` (or the hub loader) rebuilds it with strict keys."""
  size = module.base_grid * module.patch_size
  # SwiGLU can only come from an architecture that names it (timm's model_args are JSON): DINOv2's ViT-g.
  architecture = "vit_giant_patch14_dinov2" if module.mlp == "swiglu" else "vit_base_patch16_224"
  args = {"img_size": size, "patch_size": module.patch_size, "embed_dim": module.dim, "depth": module.depth,
          "num_heads": module.num_heads, "mlp_ratio": _timm_ratio(module.dim, module.mlp_ratio),
          "qkv_bias": module.qkv_bias,
          "in_chans": channels, "num_classes": 0, "class_token": module.class_token,
          "global_pool": "token" if module.pool == "cls" else "avg", "fc_norm": module.pool == "global",
          "reg_tokens": module.num_registers, "no_embed_class": bool(module.num_registers),
          "init_values": module.layer_scale or None}
  if module.pool == "cls" and not module.class_token:
    raise WeightsError("a ViT without a class token pooled by its class token: nothing to export")
  return {"architecture": architecture, "num_classes": 0, "num_features": module.dim,
          "global_pool": args["global_pool"], "model_args": args,
          "pretrained_cfg": {"input_size": [channels, size, size], "num_classes": 0, "fixed_input_size": False,
                             "first_conv": "patch_embed.proj", "classifier": "head"}}
