"""MAE's training step, jaxssl against lightly (PyTorch), side by side in one run.

    python benchmarks/speed/mae_throughput.py [--sizes micro28,tiny64] [--steps 10]

For each size, the same ViT, image size, batch, decoder and mask ratio on both sides, each measured in a fresh
subprocess, one after the other (never two at once):

* jaxssl: the whole training step of configs/mae.py's recipe (the crop and flip on device, random masks from
  the per-example keys, the encoder on the visible patches, the decoder, the loss, backward, AdamW), as
  ``python -m jaxssl.main`` runs it on this machine's devices;
* lightly (benchmarks/peers/lightly_mae.py): its MAE example's step (random token masks, a timm ViT in
  MaskedVisionTransformerTIMM on the kept tokens, MAEDecoderTIMM, the official loss, backward, AdamW) on a
  batch already in memory: no augmentation.

images/s = batch / median seconds of ``--steps`` steps after compilation (jaxssl) or 2 warm-up steps
(lightly). The ratio is jaxssl's whole step against lightly's step without augmentation.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT

# name: (encoder, patch, image size, channels, batch, decoder width, decoder depth, decoder heads)
SIZES = {
    "micro28": ("vit_micro", 4, 28, 1, 256, 64, 2, 4),      # configs/mae.py on Fashion-MNIST
    "tiny64": ("vit_tiny", 8, 64, 3, 64, 128, 2, 4),       # ViT-Ti, 64 patches of 8x8x3
    "small224": ("vit_small", 16, 224, 3, 32, 512, 8, 16),  # ViT-S/16 at ImageNet's size, the paper's decoder
    "base224": ("vit_base", 16, 224, 3, 256, 512, 8, 16),   # ViT-B/16, the paper's model and decoder (a GPU)
}
DIMS = {"vit_micro": (64, 4, 2), "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12)}


def _config(size: str, dtype: str = "float32"):
  from configs import mae as mae_config

  encoder, patch, image, channels, batch, ddim, ddepth, dheads = SIZES[size]
  config = mae_config.get_config()
  config.model.encoder, config.model.patch_size = encoder, patch
  config.augment.size = image
  config.data.source, config.data.synthetic_size, config.data.synthetic_channels = "synthetic", image, channels
  config.data.mean, config.data.std = (0.5,) * channels, (0.25,) * channels
  config.train.batch_size = batch
  config.method.decoder_dim, config.method.decoder_depth, config.method.decoder_heads = ddim, ddepth, dheads
  config.model.compute_dtype = dtype
  return config


def _jaxssl(size: str, steps: int, dtype: str) -> dict:
  """In the worker process."""
  import jax

  from benchmarks.speed.throughput import median_step_seconds

  seconds = median_step_seconds(_config(size, dtype), steps, num_classes=0)
  batch = SIZES[size][4]
  return {"images_per_s": batch / seconds, "jax": jax.__version__, "device": jax.devices()[0].device_kind}


def _spec(size: str, dtype: str) -> dict:
  encoder, patch, image, channels, batch, ddim, ddepth, dheads = SIZES[size]
  dim, depth, heads = DIMS[encoder]
  return {"image_size": image, "patch_size": patch, "channels": channels, "dim": dim, "depth": depth,
          "heads": heads, "decoder_dim": ddim, "decoder_depth": ddepth, "decoder_heads": dheads, "batch": batch,
          "mask_ratio": 0.75, "weight_decay": 0.05, "lr": 1e-3 * batch / 256, "dtype": dtype}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", default="micro28,tiny64")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 (lightly: bfloat16 autocast)")
  parser.add_argument("--lightly_python", default=common.LIGHTLY_PYTHON)
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(_jaxssl(args.worker, args.steps, args.dtype)))
    return 0

  from jaxssl.common import xla_flags

  flags = {"XLA_FLAGS": xla_flags.with_eigen_convolutions(os.environ.get("XLA_FLAGS", ""))}
  rows = []
  for size in args.sizes.split(","):
    ours = common.last_json([sys.executable, os.path.abspath(__file__), "--worker", size, "--steps", str(args.steps),
                             "--dtype", args.dtype], flags)
    theirs = common.last_json([args.lightly_python, common.peer("lightly_mae.py"), "--throughput",
                               json.dumps(_spec(size, args.dtype)), str(args.steps)])
    rows.append((size, ours, theirs))
  print(f"MAE training step, {datetime.date.today()}, {platform.machine()} with {os.cpu_count()} cores, "
        f"jax {rows[0][1]['jax']} on {rows[0][1]['device']}; {args.dtype}, mask ratio 0.75, {args.steps} steps")
  print("| size | ViT, patch, image, batch, decoder | jaxssl img/s (whole step) | lightly img/s (no augmentation) "
        "| ratio |")
  print("|---|---|---|---|---|")
  for size, ours, theirs in rows:
    encoder, patch, image, channels, batch, ddim, ddepth, dheads = SIZES[size]
    shape = f"{encoder}, {patch}px, {image}x{image}x{channels}, {batch}, {ddim}x{ddepth}"
    print(f"| {size} | {shape} | {ours['images_per_s']:.1f} | {theirs['images_per_s']:.1f} | "
          f"{ours['images_per_s'] / theirs['images_per_s']:.2f}x |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
