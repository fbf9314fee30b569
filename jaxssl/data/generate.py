"""Generated JPEG image folders with ImageNet-like sizes and content, for tests, benchmarks and smoke runs of the
ImageNet configs where no real dataset can be had.

ImageNet's training images are mostly JPEGs of about 400-500 x 330-375 px (mean about 400 x 350, ~110 KB), of
several aspect ratios. The images here draw their shorter side and aspect ratio from similar ranges, and their
content is smooth colour fields, shapes with edges and fine texture, so that JPEG decoding costs and file sizes
are realistic (flat colour would compress to a few KB and decode unrealistically fast).

    python -m jaxssl.data.generate DIR [--num_images 3000] [--classes 10] [--test_images 500]

writes DIR/train/CLASS/*.jpg and DIR/validation/CLASS/*.jpg, the layout the ImageNet configs' ``folder`` variant
reads, and prints the overrides that make such a config a short CPU smoke run (``SMOKE_OVERRIDES``).
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from jaxssl.common import command_line

ASPECTS = (4 / 3, 3 / 4, 1.0, 3 / 2, 2 / 3, 16 / 9)
VALIDATION = "validation"        # the held-out split's folder, as configs/*_imagenet.py:folder name it
# A ResNet ImageNet config (SimCLR, BYOL, VICReg) made small enough for a few CPU steps, as
# tests/test_imagenet_configs.py runs them (a ViT config also needs model.encoder=vit_micro, model.patch_size=4).
SMOKE_OVERRIDES = ("--config.model.encoder=small_resnet", "--config.model.stem=cifar",
                   "--config.model.compute_dtype=float32", "--config.data.image_size=64", "--config.augment.size=32",
                   "--config.train.batch_size=16", "--config.train.num_steps=20", "--config.train.log_every=5",
                   "--config.eval.batch_size=64")


def image(rng: np.random.Generator, height: int, width: int, label: int = 0) -> np.ndarray:
  """One uint8 RGB image [height, width, 3]: a smooth colour field, a few ellipses and bars, and texture.

  The class ``label`` sets the hue of the shapes, so a classifier can learn something from the folders."""
  y, x = np.mgrid[0:height, 0:width].astype(np.float32)
  y, x = y / height, x / width
  field = np.zeros((height, width, 3), np.float32)
  for c in range(3):
    for _ in range(3):
      fy, fx, phase = rng.uniform(0.5, 4), rng.uniform(0.5, 4), rng.uniform(0, 2 * np.pi)
      field[..., c] += rng.uniform(20, 50) * np.sin(2 * np.pi * (fy * y + fx * x) + phase)
  field += rng.uniform(60, 160, size=3)
  colour = np.asarray([(label * 67) % 256, (label * 131 + 80) % 256, (label * 29 + 160) % 256], np.float32)
  for _ in range(int(rng.integers(2, 6))):
    cy, cx, ry, rx = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.05, 0.3), rng.uniform(0.05, 0.3)
    inside = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 < 1
    field[inside] = 0.6 * colour + 0.4 * rng.uniform(0, 255, size=3)
  for _ in range(int(rng.integers(1, 4))):
    top, left = rng.uniform(0, 0.8), rng.uniform(0, 0.8)
    bar = (y > top) & (y < top + rng.uniform(0.02, 0.2)) & (x > left) & (x < left + rng.uniform(0.1, 0.6))
    field[bar] = rng.uniform(0, 255, size=3)
  field += rng.normal(0, 12, size=field.shape)              # texture: what makes JPEGs ImageNet-sized
  return np.clip(field, 0, 255).astype(np.uint8)


def image_size(rng: np.random.Generator, shorter: tuple[int, int] = (300, 500)) -> tuple[int, int]:
  """(height, width): the shorter side ~ U(shorter), the aspect ratio one of ImageNet's common ones."""
  side = int(rng.integers(shorter[0], shorter[1] + 1))
  aspect = ASPECTS[int(rng.integers(len(ASPECTS)))]
  long = int(round(side * max(aspect, 1 / aspect)))
  return (side, long) if aspect >= 1 else (long, side)


def write_folder(directory: str, num_images: int, classes: int = 10, seed: int = 0,
                 shorter: tuple[int, int] = (300, 500), quality: int = 90) -> list[str]:
  """Writes ``directory/CLASS/NNNNN.jpg`` (``classes`` folders, images spread evenly); returns the paths."""
  from PIL import Image

  rng = np.random.default_rng(seed)
  paths = []
  for i in range(num_images):
    label = i % classes
    folder = os.path.join(directory, f"class_{label:03d}")
    os.makedirs(folder, exist_ok=True)
    height, width = image_size(rng, shorter)
    path = os.path.join(folder, f"{i:06d}.jpg")
    Image.fromarray(image(rng, height, width, label)).save(path, quality=quality)
    paths.append(path)
  return paths


def main(argv=None) -> None:
  parser = command_line.ArgumentParser(prog="python -m jaxssl.data.generate", description=__doc__.split("\n\n")[0],
                                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("directory", help="where train/ and validation/ (one folder per class) are written")
  parser.add_argument("--num_images", type=command_line.positive_int, default=3000, help="training images")
  parser.add_argument("--test_images", type=command_line.non_negative_int, default=500,
                      help="validation images (0: none)")
  parser.add_argument("--classes", type=command_line.positive_int, default=10, help="classes (folders)")
  parser.add_argument("--seed", type=command_line.non_negative_int, default=0, help="the random seed")
  args = parser.parse_args(argv)
  write_folder(os.path.join(args.directory, "train"), args.num_images, args.classes, args.seed)
  if args.test_images:
    write_folder(os.path.join(args.directory, VALIDATION), args.test_images, args.classes, args.seed + 1)
  print(f"wrote {args.num_images} train and {args.test_images} {VALIDATION} JPEGs under {args.directory}; a "
        "short CPU run of an ImageNet config on them:\n  python -m jaxssl.main --config "
        f"configs/simclr_imagenet.py:folder --config.data.data_dir={args.directory} --workdir runs/smoke "
        + " ".join(SMOKE_OVERRIDES))


if __name__ == "__main__":
  main()
