"""RandAugment (Cubuk et al. 2020, arXiv:1909.13719) on the host, in the crop workers, with PIL: timm's
``rand-m9-mstd0.5-inc1`` (the policy of DeiT's and MAE's fine-tuning) as timm applies it, one PIL image at a
time, so the operations are PIL's own (``ImageOps``, ``ImageEnhance``, ``Image.transform``).

Where the crops are taken on the host (ImageNet-style data), RandAugment runs here rather than on the device:
on the CPU one host core does 22x the images per second of the device path at 224 px
(BENCHMARKS.md, "RandAugment on the device or on the host"), because a vmapped device RandAugment runs every
operation for every image and selects one, while PIL runs only the operation drawn.

The policy is ``jaxssl.ops.randaugment``'s (the device version): ``layers`` operations drawn uniformly with
replacement from timm's 15 "increasing" operations, each applied with probability ``prob`` at a magnitude
drawn from N(magnitude, magnitude_std) clipped to [0, 10], with timm's level-to-argument rules. Every draw comes
from the view's ``numpy.random.Generator`` (``host_crops.view_rng``), so the views do not depend on the number
of devices, processes or worker threads.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np

from jaxssl.ops.randaugment import MAX_LEVEL, OPS


@dataclasses.dataclass(frozen=True)
class RandAugmentSpec:
  """One view's RandAugment: ``layers`` operations at ``magnitude`` (of 10) +- ``magnitude_std``, each applied
  with probability ``prob``; geometric operations fill with ``fill`` (per channel, 0-255: timm's ``img_mean``)
  and resample with ``interpolation`` (``bilinear`` or ``bicubic``)."""
  layers: int = 2
  magnitude: float = 9.0
  magnitude_std: float = 0.5
  prob: float = 0.5
  fill: tuple[int, ...] = (128, 128, 128)
  interpolation: str = "bilinear"


def resample_filter(interpolation: str):
  """PIL's resampling filter for ``bilinear`` or ``bicubic``."""
  from PIL import Image

  return {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}[interpolation]


def _signed(rng: np.random.Generator, value: float) -> float:
  """timm's ``_randomly_negate``: the value or its negative, even odds."""
  return -value if rng.random() < 0.5 else value


def _posterize(image, bits: int):
  """``ImageOps.posterize``; 0 bits (timm's PosterizeIncreasing at magnitude 10) is a black image, as older PIL
  gave and the device version gives (Pillow 10 refuses 0 bits)."""
  from PIL import Image, ImageOps

  if bits <= 0:
    return Image.new(image.mode, image.size, 0)
  return ImageOps.posterize(image, bits)


def _solarize_add(image, add: int, threshold: int = 128):
  """timm's ``solarize_add``: ``add`` levels added to the levels below ``threshold``, capped at 255."""
  lut = [min(255, i + add) if i < threshold else i for i in range(256)]
  return image.point(lut * len(image.getbands()))


@functools.lru_cache(maxsize=None)
def _operations(spec: RandAugmentSpec) -> dict[str, Callable]:
  """name -> f(image, rng, level in [0, 1]) for timm's increasing operations; built once per spec, not per
  image (the specs of a run are a handful of frozen dataclasses)."""
  from PIL import Image, ImageEnhance, ImageOps

  resample = resample_filter(spec.interpolation)

  def fill_for(image):
    return spec.fill[0] if image.mode == "L" else tuple(spec.fill)

  def affine(image, matrix):
    return image.transform(image.size, Image.AFFINE, matrix, resample=resample, fillcolor=fill_for(image))

  def enhance(kind):
    return lambda image, rng, level: kind(image).enhance(1.0 + _signed(rng, level * 0.9))

  return {
      "AutoContrast": lambda image, rng, level: ImageOps.autocontrast(image),
      "Equalize": lambda image, rng, level: ImageOps.equalize(image),
      "Invert": lambda image, rng, level: ImageOps.invert(image),
      "Rotate": lambda image, rng, level: image.rotate(_signed(rng, level * 30.0), resample=resample,
                                                       fillcolor=fill_for(image)),
      "PosterizeIncreasing": lambda image, rng, level: _posterize(image, 4 - int(level * 4)),
      "SolarizeIncreasing": lambda image, rng, level: ImageOps.solarize(image, 256 - int(level * 256)),
      "SolarizeAdd": lambda image, rng, level: _solarize_add(image, int(level * 110)),
      "ColorIncreasing": enhance(ImageEnhance.Color),
      "ContrastIncreasing": enhance(ImageEnhance.Contrast),
      "BrightnessIncreasing": enhance(ImageEnhance.Brightness),
      "SharpnessIncreasing": enhance(ImageEnhance.Sharpness),
      "ShearX": lambda image, rng, level: affine(image, (1, _signed(rng, level * 0.3), 0, 0, 1, 0)),
      "ShearY": lambda image, rng, level: affine(image, (1, 0, 0, _signed(rng, level * 0.3), 1, 0)),
      "TranslateXRel": lambda image, rng, level: affine(
          image, (1, 0, _signed(rng, level * 0.45) * image.size[0], 0, 1, 0)),
      "TranslateYRel": lambda image, rng, level: affine(
          image, (1, 0, 0, 0, 1, _signed(rng, level * 0.45) * image.size[1])),
  }


def apply_op(name: str, image, rng: np.random.Generator, magnitude: float, spec: RandAugmentSpec):
  """Operation ``name`` (one of ``jaxssl.ops.randaugment.OPS``) at ``magnitude`` (0-10) on a PIL image."""
  return _operations(spec)[name](image, rng, magnitude / MAX_LEVEL)


def rand_augment(image, rng: np.random.Generator, spec: RandAugmentSpec):
  """``spec.layers`` random operations on one PIL image (mode ``L`` or ``RGB``); returns a PIL image."""
  operations = _operations(spec)
  for index in rng.integers(0, len(OPS), size=spec.layers):
    applied = rng.random() < spec.prob
    magnitude = rng.normal(spec.magnitude, spec.magnitude_std) if spec.magnitude_std > 0 else spec.magnitude
    if applied:
      level = float(np.clip(magnitude, 0.0, MAX_LEVEL)) / MAX_LEVEL
      image = operations[OPS[int(index)]](image, rng, level)
  return image
