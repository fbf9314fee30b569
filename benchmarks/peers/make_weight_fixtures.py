"""Writes tests/data/weights/: small reference models with random weights, saved as their libraries save them,
and their features on fixed images, for jaxssl's weight import and export tests (which never download).

    .venv-lightly/bin/python benchmarks/peers/make_weight_fixtures.py     # the PyTorch venv: torch, timm, transformers

Each model is narrow and shallow (ViTs: width 32, 2 blocks, 16 px images in 4 px patches; ResNets: 8-64 channels,
32 px images; about 100-300 KB each), every
parameter drawn at random (not the libraries' initialisations, whose class tokens and LayerScale start near 0
and would hide a wrongly mapped tensor), and saved by timm's ``save_for_hf`` (``config.json`` with
``architecture`` and ``model_args``, ``model.safetensors``) or transformers' ``save_pretrained``.
``features.npz`` holds the normalised images [N, C, H, W] and the library's features of them [N, D]: timm's
pre-logits (``create_model(..., num_classes=0)(x)``), transformers' class token after the final layernorm (or
I-JEPA's mean token).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import timm
import torch
from timm.models._hub import save_for_hf

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SMALL = dict(img_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2)

# name -> (timm architecture, its arguments, what it stands for)
TIMM_VITS = {
    "timm_vit_cls": ("vit_base_patch16_224", {}, "a ViT with a class token (DeiT, MAE, DINO, iBOT)"),
    "timm_dinov2_reg": ("vit_small_patch14_reg4_dinov2", {"reg_tokens": 2},
                        "DINOv2 with registers and LayerScale (no position for class and register tokens)"),
    "timm_vit_avg": ("vit_base_patch16_224", {"class_token": False, "global_pool": "avg"},
                     "no class token, the mean patch token through fc_norm"),
    "timm_vit_avg_norm": ("vit_base_patch16_224", {"class_token": False, "global_pool": "avg", "fc_norm": False},
                          "no class token, the mean of the final norm's patch tokens (I-JEPA's layout)"),
    # The architecture brings SwiGLUPacked and SiLU; a narrower packed width: 4 x 32 = 2 x 64.
    "timm_dinov2_swiglu": ("vit_giant_patch14_dinov2", {"mlp_ratio": 4.0},
                           "DINOv2's ViT-g layout: SwiGLU feed-forward and LayerScale"),
}


# vit_micro's size (64 wide, 4 deep, 2 heads), which a jaxssl run can start from (model.init_from), with its
# features at 28 px too: the position table resized by timm (resample_abs_pos_embed) from 4x4 to 7x7.
MICRO = dict(img_size=16, patch_size=4, embed_dim=64, depth=4, num_heads=2)

# timm's ResNets, which use torchvision's names (conv1, bn1, layer1.0.conv1, ..., downsample.0/1): narrow
# stages (channels 8-64; the stem keeps timm's 64), at 32 px; two blocks in the first stage so that block
# numbering is tried.
SMALL_RESNET = dict(layers=(2, 1, 1, 1), channels=(8, 16, 32, 64))
TIMM_RESNETS = {
    "timm_resnet50": ("resnet50", "ResNet-50's layout (bottleneck blocks), torchvision's names"),
    "timm_resnet18": ("resnet18", "ResNet-18's layout (basic blocks), torchvision's names"),
}


# transformers' ViT families, saved by save_pretrained; name -> (class, config arguments, the features jaxssl reads)
HF_SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=16, patch_size=4)
HF_VITS = {
    "hf_dinov2": ("Dinov2Model", "Dinov2Config", {}, "pooler", "DINOv2 (LayerScale) as transformers saves it"),
    "hf_dinov2_reg": ("Dinov2WithRegistersModel", "Dinov2WithRegistersConfig", {"num_register_tokens": 2}, "pooler",
                      "DINOv2 with registers as transformers saves it"),
    "hf_vit": ("ViTModel", "ViTConfig", {"intermediate_size": 128}, "cls", "ViT as transformers saves it"),
    "hf_vit_mae": ("ViTMAEModel", "ViTMAEConfig", {"intermediate_size": 128, "mask_ratio": 0.0}, "cls",
                   "ViT-MAE's encoder as transformers saves it"),
    "hf_ijepa": ("IJepaModel", "IJepaConfig", {"intermediate_size": 128}, "mean",
                 "I-JEPA's encoder (no class token) as transformers saves it"),
}


def write_transformers(out: str, model, images: torch.Tensor, features: str, note: str) -> None:
  import transformers

  model.save_pretrained(out)
  torch.manual_seed(0)                         # ViT-MAE shuffles its patches at random (none masked here)
  with torch.no_grad():
    result = model(pixel_values=images)
  hidden = result.last_hidden_state
  value = {"pooler": lambda: result.pooler_output, "cls": lambda: hidden[:, 0], "mean": lambda: hidden.mean(1)}
  np.savez(os.path.join(out, "features.npz"), images=images.numpy(), features=value[features]().numpy())
  with open(os.path.join(out, "README.md"), "w") as f:
    f.write(f"{note}. Written by benchmarks/peers/make_weight_fixtures.py "
            f"(transformers {transformers.__version__}, torch "
            f"{torch.__version__}); features.npz: the images and the model's features of them ({features}).\n")


def write_official(out_dir: str) -> None:
  """The official repositories' training checkpoints, built around the timm fixtures' weights as their scripts
  save them (torch.save of dicts; names transcribed from facebookresearch/mae, dino, dinov2 and ijepa), each
  beside the features of the encoder it holds (the timm fixture's)."""
  import argparse

  from safetensors.torch import load_file

  def timm_weights(name):
    return load_file(os.path.join(out_dir, name, "model.safetensors"))

  def noise_like(tensors, seed):
    g = torch.Generator().manual_seed(seed)
    return {k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in tensors.items()}

  def copy_features(src, dst):
    saved = np.load(os.path.join(out_dir, src, "features.npz"))
    np.savez(os.path.join(out_dir, dst, "features.npz"), **saved)

  cls = timm_weights("timm_vit_cls")                   # timm's names are MAE's, DINO's and iBOT's
  g = torch.Generator().manual_seed(50)
  decoder = {"mask_token": torch.randn(1, 1, 16, generator=g), "decoder_embed.weight": torch.randn(16, 32, generator=g),
             "decoder_pos_embed": torch.randn(1, 17, 16, generator=g),
             "decoder_blocks.0.norm1.weight": torch.ones(16), "decoder_norm.weight": torch.ones(16),
             "decoder_pred.weight": torch.randn(48, 16, generator=g)}
  checkpoints = {
      "official_mae": ({"model": {**cls, **decoder}, "epoch": 399, "args": argparse.Namespace(model="mae_vit_base")},
                       "timm_vit_cls", "MAE's main_pretrain.py checkpoint: the encoder with its decoder"),
      "official_dino": ({"student": {**{f"module.backbone.{k}": v for k, v in noise_like(cls, 51).items()},
                                     "module.head.mlp.0.weight": torch.randn(64, 32, generator=g)},
                         "teacher": {**{f"backbone.{k}": v for k, v in cls.items()},
                                     "head.last_layer.weight_g": torch.ones(128, 1)},
                         "epoch": 100, "args": argparse.Namespace(arch="vit_small")},
                        "timm_vit_cls", "DINO's main_dino.py checkpoint: student (under DDP) and teacher"),
  }
  reg = timm_weights("timm_dinov2_reg")                # DINOv2's names, chunked blocks, the class token's row
  dinov2 = {"cls_token": reg["cls_token"], "register_tokens": reg["reg_token"], "mask_token": torch.zeros(1, 32),
            "pos_embed": torch.cat([torch.zeros(1, 1, 32), reg["pos_embed"]], dim=1)}
  for k, v in reg.items():
    if k.startswith("blocks."):
      index = int(k.split(".")[1])
      dinov2[k.replace(f"blocks.{index}.", f"blocks.{index}.{index}.", 1)] = v     # block_chunks=2
    elif k not in ("cls_token", "reg_token", "pos_embed"):
      dinov2[k] = v
  checkpoints["official_dinov2_reg"] = (dinov2, "timm_dinov2_reg",
                                        "DINOv2's released backbone layout, with registers and chunked blocks")
  avg = timm_weights("timm_vit_avg_norm")              # I-JEPA's encoder: no class token, the final norm
  checkpoints["official_ijepa"] = (
      {"encoder": {f"module.{k}": v for k, v in noise_like(avg, 52).items()},
       "predictor": {"module.predictor_embed.weight": torch.randn(16, 32, generator=g)},
       "target_encoder": {f"module.{k}": v for k, v in avg.items()}, "epoch": 300, "lr": 0.001},
      "timm_vit_avg_norm", "I-JEPA's src/train.py checkpoint: encoder, predictor and target encoder under DDP")
  for name, (content, features, note) in checkpoints.items():
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    torch.save(content, os.path.join(out_dir, name, "checkpoint.pth"))
    copy_features(features, name)
    with open(os.path.join(out_dir, name, "README.md"), "w") as f:
      f.write(f"{note}, around tests/data/weights/{features}'s weights (whose features.npz this is). Written by "
              f"benchmarks/peers/make_weight_fixtures.py (torch {torch.__version__}).\n")
    print(f"{name} -> {os.path.join(out_dir, name)}")


def sincos_table(dim: int, grid: int) -> np.ndarray:
  """MAE's ``util/pos_embed.get_2d_sincos_pos_embed(dim, grid, cls_token=True)``, transcribed: [1 + grid^2, dim],
  a zero row for the class token, then half the width for the column, half for the row."""
  def one_axis(half, positions):
    omega = 1.0 / 10000 ** (np.arange(half // 2, dtype=np.float64) / (half / 2.0))
    out = np.einsum("m,d->md", positions.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  w, h = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32))
  table = np.concatenate([one_axis(dim // 2, w), one_axis(dim // 2, h)], axis=1)
  return np.concatenate([np.zeros((1, dim)), table]).astype(np.float32)


class OfficialMAE(torch.nn.Module):
  """MAE's ``models_mae.MaskedAutoencoderViT`` transcribed (timm's Block and PatchEmbed, as the official code
  imports them; LayerNorm eps 1e-6; fixed sine-cosine tables), with the masking noise passed in so that jaxssl
  can draw the same masks."""

  def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads, decoder_dim, decoder_depth,
               decoder_heads, mlp_ratio=4.0):
    super().__init__()
    from functools import partial

    from timm.models.vision_transformer import Block, PatchEmbed

    norm = partial(torch.nn.LayerNorm, eps=1e-6)
    self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
    grid = img_size // patch_size
    self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, embed_dim))
    self.pos_embed = torch.nn.Parameter(torch.from_numpy(sincos_table(embed_dim, grid))[None], requires_grad=False)
    self.blocks = torch.nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm)
                                       for _ in range(depth)])
    self.norm = norm(embed_dim)
    self.decoder_embed = torch.nn.Linear(embed_dim, decoder_dim)
    self.mask_token = torch.nn.Parameter(torch.zeros(1, 1, decoder_dim))
    self.decoder_pos_embed = torch.nn.Parameter(torch.from_numpy(sincos_table(decoder_dim, grid))[None],
                                                requires_grad=False)
    self.decoder_blocks = torch.nn.ModuleList([Block(decoder_dim, decoder_heads, mlp_ratio, qkv_bias=True,
                                                     norm_layer=norm) for _ in range(decoder_depth)])
    self.decoder_norm = norm(decoder_dim)
    self.decoder_pred = torch.nn.Linear(decoder_dim, patch_size ** 2 * in_chans)
    self.patch, self.channels = patch_size, in_chans

  def patchify(self, imgs):                      # the official one, its 3 channels generalised to in_chans
    p, c = self.patch, self.channels
    h = w = imgs.shape[2] // p
    x = imgs.reshape(imgs.shape[0], c, h, p, w, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(imgs.shape[0], h * w, p * p * c)

  def forward(self, imgs, noise, mask_ratio=0.75):
    x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
    n, length, d = x.shape
    keep = int(length * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    x = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).repeat(1, 1, d))
    mask = torch.ones(n, length)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    x = torch.cat([(self.cls_token + self.pos_embed[:, :1, :]).expand(n, -1, -1), x], dim=1)
    for block in self.blocks:
      x = block(x)
    x = self.decoder_embed(self.norm(x))
    tokens = self.mask_token.repeat(n, length + 1 - x.shape[1], 1)
    x_ = torch.cat([x[:, 1:, :], tokens], dim=1)
    x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
    x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
    for block in self.decoder_blocks:
      x = block(x)
    pred = self.decoder_pred(self.decoder_norm(x))[:, 1:, :]
    target = self.patchify(imgs)                 # --norm_pix_loss, the paper's setting
    target = (target - target.mean(dim=-1, keepdim=True)) / (target.var(dim=-1, keepdim=True) + 1.e-6) ** .5
    loss = ((pred - target) ** 2).mean(dim=-1)
    return (loss * mask).sum() / mask.sum(), pred, mask


def write_official_mae_micro(out_dir: str) -> None:
  """MAE's main_pretrain.py checkpoint at configs/mae.py's sizes (vit_micro: 64 wide, 4 deep, 2 heads, 4 px
  patches at 28 px; decoder 64 wide, 2 blocks, 4 heads), decoder included, 3 channels; beside it the official
  forward's predictions and loss on fixed images and masking noise."""
  model = OfficialMAE(28, 4, 3, 64, 4, 2, 64, 2, 4).eval()
  randomize(model, 60)
  with torch.no_grad():                          # the position tables are fixed (requires_grad=False): never trained
    model.pos_embed.copy_(torch.from_numpy(sincos_table(64, 7))[None])
    model.decoder_pos_embed.copy_(torch.from_numpy(sincos_table(64, 7))[None])
  images = torch.randn(3, 3, 28, 28, generator=torch.Generator().manual_seed(61))
  noise = torch.rand(3, 49, generator=torch.Generator().manual_seed(62))
  with torch.no_grad():
    loss, pred, mask = model(images, noise)
  out = os.path.join(out_dir, "official_mae_micro")
  os.makedirs(out, exist_ok=True)
  import argparse

  state = model.state_dict()
  optimizer = {"state": {}, "param_groups": [{"lr": 1.5e-4, "weight_decay": 0.05, "params": [0, 1]}]}
  torch.save({"model": state, "optimizer": optimizer, "epoch": 799, "scaler": {"scale": 65536.0},
              "args": argparse.Namespace(model="mae_vit_micro", norm_pix_loss=True, mask_ratio=0.75)},
             os.path.join(out, "checkpoint.pth"))
  np.savez(os.path.join(out, "forward.npz"), images=images.numpy(), noise=noise.numpy(), pred=pred.numpy(),
           mask=mask.numpy(), loss=loss.numpy())
  with open(os.path.join(out, "README.md"), "w") as f:
    f.write("MAE's main_pretrain.py checkpoint (model with its decoder, optimizer, epoch, scaler, args) at "
            "configs/mae.py's sizes, 3 channels, random weights; forward.npz: images [N, C, H, W], the masking "
            "noise, and the official forward's predictions, mask and loss (norm_pix_loss). Written by "
            f"benchmarks/peers/make_weight_fixtures.py (torch {torch.__version__}, timm {timm.__version__}).\n")
  print(f"official_mae_micro -> {out} ({os.path.getsize(os.path.join(out, 'checkpoint.pth')) // 1024} KB)")


def to_flax_npz(state: dict, layout: str, scanned: bool = False) -> dict[str, np.ndarray]:
  """A timm ViT state dict in Google's Flax names, transcribed from the layouts timm's ``_load_weights`` reads:
  ``vit_jax`` (google-research/vision_transformer: ``Transformer/posembed_input`` with the class token's row,
  ``MultiHeadDotProductAttention_1``, ``LayerNorm_2``, ``MlpBlock_3``) or ``big_vision`` (``params/`` prefix,
  ``pos_embedding`` of the patches only, the class token's row folded into ``cls``, ``LayerNorm_0/1``,
  ``MlpBlock_0``; ``scanned``: one ``Transformer/encoderblock`` with a leading depth axis)."""
  n = lambda t: t.detach().numpy().astype(np.float32)        # noqa: E731
  d = state["patch_embed.proj.weight"].shape[0]
  depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
  heads = SMALL["num_heads"]
  out = {"embedding/kernel": n(state["patch_embed.proj.weight"]).transpose(2, 3, 1, 0),
         "embedding/bias": n(state["patch_embed.proj.bias"]),
         "Transformer/encoder_norm/scale": n(state["norm.weight"]),
         "Transformer/encoder_norm/bias": n(state["norm.bias"])}
  pos = n(state["pos_embed"])
  if "cls_token" in state:
    if layout == "big_vision":
      out["cls"], out["pos_embedding"] = n(state["cls_token"]) + pos[:, :1], pos[:, 1:]
    else:
      out["cls"], out["Transformer/posembed_input/pos_embedding"] = n(state["cls_token"]), pos
  else:
    out["pos_embedding" if layout == "big_vision" else "Transformer/posembed_input/pos_embedding"] = pos
  mha, ln2, mlp = ("MultiHeadDotProductAttention_0", "LayerNorm_1", "MlpBlock_0") if layout == "big_vision" else (
      "MultiHeadDotProductAttention_1", "LayerNorm_2", "MlpBlock_3")
  blocks = []
  for i in range(depth):
    b = f"blocks.{i}"
    qkv_w, qkv_b = n(state[f"{b}.attn.qkv.weight"]), n(state[f"{b}.attn.qkv.bias"])
    block = {"LayerNorm_0/scale": n(state[f"{b}.norm1.weight"]), "LayerNorm_0/bias": n(state[f"{b}.norm1.bias"]),
             f"{ln2}/scale": n(state[f"{b}.norm2.weight"]), f"{ln2}/bias": n(state[f"{b}.norm2.bias"])}
    for j, name in enumerate(("query", "key", "value")):
      block[f"{mha}/{name}/kernel"] = qkv_w[j * d:(j + 1) * d].T.reshape(d, heads, d // heads)
      block[f"{mha}/{name}/bias"] = qkv_b[j * d:(j + 1) * d].reshape(heads, d // heads)
    block[f"{mha}/out/kernel"] = n(state[f"{b}.attn.proj.weight"]).T.reshape(heads, d // heads, d)
    block[f"{mha}/out/bias"] = n(state[f"{b}.attn.proj.bias"])
    for j, fc in enumerate(("fc1", "fc2")):
      block[f"{mlp}/Dense_{j}/kernel"] = n(state[f"{b}.mlp.{fc}.weight"]).T
      block[f"{mlp}/Dense_{j}/bias"] = n(state[f"{b}.mlp.{fc}.bias"])
    blocks.append(block)
  if scanned:
    out.update({f"Transformer/encoderblock/{k}": np.stack([blk[k] for blk in blocks]) for k in blocks[0]})
  else:
    out.update({f"Transformer/encoderblock_{i}/{k}": v for i, blk in enumerate(blocks) for k, v in blk.items()})
  out["head/kernel"], out["head/bias"] = np.zeros((d, 5), np.float32), np.zeros(5, np.float32)
  return {("params/" + k if layout == "big_vision" else k): v for k, v in out.items()}


# name -> (the timm fixture whose weights and features it holds, layout, scanned, timm's arguments to read it)
FLAX_NPZ = {
    "big_vision_vit_cls": ("timm_vit_cls", "big_vision", True, {"no_embed_class": True}),
    "vit_jax_vit_cls": ("timm_vit_cls", "vit_jax", False, {}),
    "big_vision_vit_gap": ("timm_vit_avg_norm", "big_vision", False,
                           {"class_token": False, "global_pool": "avg", "fc_norm": False}),
}


def write_flax_npz(out_dir: str) -> None:
  """Google's Flax ViT checkpoints (.npz) around the timm fixtures' weights; each is read back by timm's own
  ``_load_weights`` and must give the timm fixture's features before it is written."""
  from safetensors.torch import load_file
  from timm.models.vision_transformer import _load_weights

  for name, (source, layout, scanned, timm_args) in FLAX_NPZ.items():
    state = load_file(os.path.join(out_dir, source, "model.safetensors"))
    arrays = to_flax_npz(state, layout, scanned)
    out = os.path.join(out_dir, name)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.npz")
    np.savez(path, **arrays)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, **SMALL, **timm_args).eval()
    _load_weights(model, path)
    saved = np.load(os.path.join(out_dir, source, "features.npz"))
    with torch.no_grad():
      features = model(torch.from_numpy(saved["images"])).numpy()
    np.testing.assert_allclose(features, saved["features"], rtol=1e-5, atol=1e-5)
    np.savez(os.path.join(out, "features.npz"), images=saved["images"], features=features)
    with open(os.path.join(out, "README.md"), "w") as f:
      f.write(f"tests/data/weights/{source}'s weights in {layout}'s Flax names{' (scanned blocks)' if scanned else ''}"
              f"; features.npz: timm's features after timm's _load_weights read this file (timm {timm.__version__}). "
              "Written by benchmarks/peers/make_weight_fixtures.py.\n")
    print(f"{name} -> {path} ({os.path.getsize(path) // 1024} KB)")


def randomize(model: torch.nn.Module, seed: int) -> None:
  """Every parameter drawn at random: norms' weights around 1, the rest around 0, all of them distinct;
  BatchNorm's running statistics too (means around 0, variances in [0.5, 1.5])."""
  generator = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in model.named_parameters():
      noise = torch.randn(p.shape, generator=generator) * 0.2
      normed = ("norm" in name or name.startswith("bn") or ".bn" in name or "downsample.1" in name)
      p.copy_(noise + (1.0 if normed and name.endswith("weight") else 0.0))
    for name, b in model.named_buffers():
      if name.endswith("running_mean"):
        b.copy_(torch.randn(b.shape, generator=generator) * 0.2)
      elif name.endswith("running_var"):
        b.copy_(0.5 + torch.rand(b.shape, generator=generator))


def write(out: str, model: torch.nn.Module, images: torch.Tensor, note: str) -> None:
  save_for_hf(model, out, safe_serialization=True)
  with torch.no_grad():
    features = model(images).numpy()
  np.savez(os.path.join(out, "features.npz"), images=images.numpy(), features=features)
  with open(os.path.join(out, "README.md"), "w") as f:
    f.write(f"{note}. Written by benchmarks/peers/make_weight_fixtures.py (timm {timm.__version__}, torch "
            f"{torch.__version__}); features.npz: the images and timm's pre-logits features of them.\n")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "weights"))
  parser.add_argument("--only", nargs="+", choices=sorted(ADDED), help="write these fixtures alone (the others "
                      "are read, not rewritten)")
  args = parser.parse_args()
  if args.only:
    for name in args.only:
      ADDED[name](args.out)
    return
  images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
  for seed, (name, (architecture, extra, note)) in enumerate(TIMM_VITS.items()):
    model = timm.create_model(architecture, pretrained=False, num_classes=0, **SMALL, **extra).eval()
    randomize(model, seed)
    out = os.path.join(args.out, name)
    write(out, model, images, note)
    print(f"{name}: {architecture} {json.dumps({k: str(v) for k, v in extra.items()})} -> {out} "
          f"({os.path.getsize(os.path.join(out, 'model.safetensors')) // 1024} KB)")
  model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, **MICRO).eval()
  randomize(model, 20)
  out = os.path.join(args.out, "timm_vit_micro")
  write(out, model, images, "jaxssl's vit_micro size, for runs that start from imported weights")
  from timm.layers import resample_abs_pos_embed

  larger = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0, **{**MICRO, "img_size": 28})
  state = dict(model.state_dict())
  state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], (7, 7), num_prefix_tokens=1)
  larger.load_state_dict(state)
  images28 = torch.randn(4, 3, 28, 28, generator=torch.Generator().manual_seed(2))
  with torch.no_grad():
    np.savez(os.path.join(out, "features_28px.npz"), images=images28.numpy(), features=larger.eval()(images28).numpy())
  print(f"timm_vit_micro -> {out} ({os.path.getsize(os.path.join(out, 'model.safetensors')) // 1024} KB)")
  import transformers

  for seed, (name, (model_class, config_class, extra, features, note)) in enumerate(HF_VITS.items(), start=30):
    config = getattr(transformers, config_class)(**HF_SMALL, **extra)
    model = getattr(transformers, model_class)(config).eval()
    randomize(model, seed)
    out = os.path.join(args.out, name)
    write_transformers(out, model, images, features, note)
    print(f"{name}: {model_class} -> {out} ({os.path.getsize(os.path.join(out, 'model.safetensors')) // 1024} KB)")
  write_official(args.out)
  images = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
  for seed, (name, (architecture, note)) in enumerate(TIMM_RESNETS.items(), start=len(TIMM_VITS)):
    model = timm.create_model(architecture, pretrained=False, num_classes=0, **SMALL_RESNET).eval()
    randomize(model, seed)
    out = os.path.join(args.out, name)
    write(out, model, images, note)
    print(f"{name}: {architecture} -> {out} ({os.path.getsize(os.path.join(out, 'model.safetensors')) // 1024} KB)")
  for write_more in ADDED.values():
    write_more(args.out)


# Fixtures built from the ones above (or on their own), which --only writes alone.
ADDED = {"official_mae_micro": write_official_mae_micro, "flax_npz": write_flax_npz}


if __name__ == "__main__":
  main()
