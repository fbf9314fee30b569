"""Writes tests/data/weights/: small reference models with random weights, saved as their libraries save them,
and their features on fixed images, for jaxssl's weight import and export tests (which never download).

    .venv-lightly/bin/python benchmarks/make_weight_fixtures.py     # the PyTorch venv: torch, timm, transformers

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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    f.write(f"{note}. Written by benchmarks/make_weight_fixtures.py (transformers {transformers.__version__}, torch "
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
              f"benchmarks/make_weight_fixtures.py (torch {torch.__version__}).\n")
    print(f"{name} -> {os.path.join(out_dir, name)}")


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
    f.write(f"{note}. Written by benchmarks/make_weight_fixtures.py (timm {timm.__version__}, torch "
            f"{torch.__version__}); features.npz: the images and timm's pre-logits features of them.\n")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "weights"))
  args = parser.parse_args()
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


if __name__ == "__main__":
  main()
