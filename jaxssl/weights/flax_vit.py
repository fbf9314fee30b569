"""Google's Flax ViT checkpoints (``.npz``) to timm's names and back: big_vision's (``models/vit.py``, as its
``.npz`` checkpoints hold them under ``params/``) and the original ViT paper's (google-research/vision_transformer,
the ``augreg`` and ``in21k`` weights), the two layouts timm's ``_load_weights`` reads.

- big_vision: ``embedding``, ``cls`` (no position: ``pos_embedding`` covers the patches only),
  ``Transformer/encoderblock_N/`` (or one ``encoderblock`` with a leading depth axis, ``scan=True``) with
  ``LayerNorm_0``, ``MultiHeadDotProductAttention_0``, ``LayerNorm_1``, ``MlpBlock_0``;
- the ViT paper's: ``Transformer/posembed_input/pos_embedding`` with the class token's row,
  ``MultiHeadDotProductAttention_1``, ``LayerNorm_2``, ``MlpBlock_3``.

Attention kernels are per head (query [D, H, D/H], out [H, D/H, D]): they give the heads a bare file does not
otherwise show. A MAP head (``MAPHead_0``, SigLIP's pooling) has no place in jaxssl's ViT and is refused.
"""

from __future__ import annotations

import numpy as np

from jaxssl.weights.files import Taker, WeightsError

PREFIXES = ("params/img/", "params/", "opt/target/", "")


def is_flax_vit(tensors: dict) -> bool:
  return any(f"{prefix}embedding/kernel" in tensors for prefix in PREFIXES)


def to_timm(tensors: dict[str, np.ndarray], where: str) -> tuple[dict[str, np.ndarray], dict]:
  """(timm's state dict, a config with its ``global_pool`` and ``num_heads``) of a Flax ViT's arrays. Every array
  is used but a classifier head's; what is left is refused by name."""
  prefix = next(p for p in PREFIXES if f"{p}embedding/kernel" in tensors)
  if any(k.startswith(f"{prefix}MAPHead_0/") for k in tensors):
    raise WeightsError(f"{where}: pooled by a MAP head (MAPHead_0, attention pooling), which jaxssl's ViT does not "
                       "have; it reads the class token or the mean patch token")
  take = Taker({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, where)
  out = {"patch_embed.proj.weight": take("embedding/kernel").transpose(3, 2, 0, 1),
         "patch_embed.proj.bias": take("embedding/bias"),
         "norm.weight": take("Transformer/encoder_norm/scale"), "norm.bias": take("Transformer/encoder_norm/bias")}
  if "cls" in take.tensors:
    out["cls_token"] = take("cls")
  big_vision = "pos_embedding" in take.tensors
  out["pos_embed"] = take("pos_embedding" if big_vision else "Transformer/posembed_input/pos_embedding")
  mha, ln2, mlp = _names(big_vision)
  scanned = "Transformer/encoderblock/LayerNorm_0/scale" in take.tensors
  if scanned:
    depth = take.tensors["Transformer/encoderblock/LayerNorm_0/scale"].shape[0]
    stacked = {name: take(f"Transformer/encoderblock/{name}") for name in _block_names(mha, ln2, mlp)}
    blocks = [{name: value[i] for name, value in stacked.items()} for i in range(depth)]
  else:
    depth = sum(1 for k in take.tensors
                if k.startswith("Transformer/encoderblock_") and k.endswith("/LayerNorm_0/scale"))
    blocks = [{name: take(f"Transformer/encoderblock_{i}/{name}") for name in _block_names(mha, ln2, mlp)}
              for i in range(depth)]
  heads = 0
  for i, block in enumerate(blocks):
    b, d = f"blocks.{i}", block["LayerNorm_0/scale"].shape[0]
    heads = block[f"{mha}/query/kernel"].shape[1]
    out[f"{b}.norm1.weight"], out[f"{b}.norm1.bias"] = block["LayerNorm_0/scale"], block["LayerNorm_0/bias"]
    out[f"{b}.norm2.weight"], out[f"{b}.norm2.bias"] = block[f"{ln2}/scale"], block[f"{ln2}/bias"]
    out[f"{b}.attn.qkv.weight"] = np.concatenate([block[f"{mha}/{n}/kernel"].reshape(d, -1).T
                                                  for n in ("query", "key", "value")])
    out[f"{b}.attn.qkv.bias"] = np.concatenate([block[f"{mha}/{n}/bias"].reshape(-1)
                                                for n in ("query", "key", "value")])
    out[f"{b}.attn.proj.weight"] = block[f"{mha}/out/kernel"].reshape(-1, d).T
    out[f"{b}.attn.proj.bias"] = block[f"{mha}/out/bias"]
    for j, fc in enumerate(("fc1", "fc2")):
      out[f"{b}.mlp.{fc}.weight"] = block[f"{mlp}/Dense_{j}/kernel"].T
      out[f"{b}.mlp.{fc}.bias"] = block[f"{mlp}/Dense_{j}/bias"]
  take.refuse_left("ViT", ignored=lambda name: name.startswith(("head/", "pre_logits/")))
  return out, {"global_pool": "token" if "cls_token" in out else "avg", "model_args": {"num_heads": int(heads)}}


def _names(big_vision: bool) -> tuple[str, str, str]:
  """The attention's, second norm's and MLP's module names in a block."""
  if big_vision:
    return "MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0"
  return "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3"


def _block_names(mha: str, ln2: str, mlp: str) -> list[str]:
  names = [f"{norm}/{p}" for norm in ("LayerNorm_0", ln2) for p in ("scale", "bias")]
  names += [f"{mha}/{n}/{p}" for n in ("query", "key", "value", "out") for p in ("kernel", "bias")]
  return names + [f"{mlp}/Dense_{j}/{p}" for j in (0, 1) for p in ("kernel", "bias")]


def from_timm(tensors: dict[str, np.ndarray], module) -> dict[str, np.ndarray]:
  """big_vision's ``params/...`` arrays of a jaxssl ViT given in timm's names (``timm_vit.from_jaxssl``'s classic
  layout): one ``encoderblock_N`` per block, the class token's position folded into ``cls``. What big_vision's
  ViT cannot hold (registers, LayerScale, SwiGLU, fc_norm pooling) is refused in one line."""
  missing = [what for what, has in (("registers", module.num_registers), ("LayerScale", module.layer_scale),
                                    ("a SwiGLU feed-forward", module.mlp != "gelu"),
                                    ("fc_norm pooling (model.pool='global')", module.pool == "global")) if has]
  if missing:
    raise WeightsError(f"big_vision's ViT has no {', '.join(missing)}: export this encoder to timm or transformers")
  d, heads = module.dim, module.num_heads
  out = {"embedding/kernel": tensors["patch_embed.proj.weight"].transpose(2, 3, 1, 0),
         "embedding/bias": tensors["patch_embed.proj.bias"],
         "Transformer/encoder_norm/scale": tensors["norm.weight"],
         "Transformer/encoder_norm/bias": tensors["norm.bias"]}
  pos = tensors["pos_embed"]
  if module.class_token:
    out["cls"], pos = tensors["cls_token"] + pos[:, :1], pos[:, 1:]
  out["pos_embedding"] = pos
  mha, ln2, mlp = _names(True)
  for i in range(module.depth):
    b, e = f"blocks.{i}", f"Transformer/encoderblock_{i}"
    out[f"{e}/LayerNorm_0/scale"] = tensors[f"{b}.norm1.weight"]
    out[f"{e}/LayerNorm_0/bias"] = tensors[f"{b}.norm1.bias"]
    out[f"{e}/{ln2}/scale"], out[f"{e}/{ln2}/bias"] = tensors[f"{b}.norm2.weight"], tensors[f"{b}.norm2.bias"]
    qkv = tensors[f"{b}.attn.qkv.weight"]
    bias = tensors.get(f"{b}.attn.qkv.bias", np.zeros(3 * d, np.float32))    # no bias: zeros, the same function
    for j, name in enumerate(("query", "key", "value")):
      out[f"{e}/{mha}/{name}/kernel"] = qkv[j * d:(j + 1) * d].T.reshape(d, heads, d // heads)
      out[f"{e}/{mha}/{name}/bias"] = bias[j * d:(j + 1) * d].reshape(heads, d // heads)
    out[f"{e}/{mha}/out/kernel"] = tensors[f"{b}.attn.proj.weight"].T.reshape(heads, d // heads, d)
    out[f"{e}/{mha}/out/bias"] = tensors[f"{b}.attn.proj.bias"]
    for j, fc in enumerate(("fc1", "fc2")):
      out[f"{e}/{mlp}/Dense_{j}/kernel"] = tensors[f"{b}.mlp.{fc}.weight"].T
      out[f"{e}/{mlp}/Dense_{j}/bias"] = tensors[f"{b}.mlp.{fc}.bias"]
  return {f"params/{k}": np.asarray(v, np.float32) for k, v in out.items()}
