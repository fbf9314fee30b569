"""RandAugment (Cubuk et al. 2020, arXiv:1909.13719) on the device, as timm's ``rand-m9-mstd0.5-inc1`` (the
policy of DeiT's and MAE's fine-tuning): ``num_layers`` operations per image, each drawn uniformly (with
replacement) from timm's 15 "increasing" operations and applied with probability 0.5, at a magnitude drawn
from N(magnitude, magnitude_std) clipped to [0, 10].

Images are float [H, W, C] in [0, 1] (after the crop and flip, before normalisation), as the PIL images timm
transforms are; each operation follows PIL's definition (``ImageOps``, ``ImageEnhance``, ``Image.transform``)
in float arithmetic, then clips to [0, 1]. Geometric operations fill with ``fill`` (timm: the dataset's mean)
and interpolate bilinearly (timm: as the transform's interpolation, bicubic in MAE's and DeiT's recipes; the
host version, ``jaxssl.data.host_randaugment``, does either and is the cheaper place for large images). Every
random choice comes from the image's key, so 8 devices give the same views as 1.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

MAX_LEVEL = 10.0                     # timm's _LEVEL_DENOM
OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
       "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing",
       "ShearX", "ShearY", "TranslateXRel", "TranslateYRel")


def _gray(x: jax.Array) -> jax.Array:
  """PIL's ``convert("L")`` (ITU-R 601-2 luma), [H, W, 1]."""
  if x.shape[-1] == 1:
    return x
  return (x[..., 0:1] * 0.299 + x[..., 1:2] * 0.587 + x[..., 2:3] * 0.114)


def _blend(degenerate: jax.Array, x: jax.Array, factor: jax.Array) -> jax.Array:
  """``ImageEnhance``'s ``Image.blend(degenerate, image, factor)``, clipped."""
  return jnp.clip(degenerate + factor * (x - degenerate), 0.0, 1.0)


def _to_levels(x: jax.Array) -> jax.Array:
  return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.int32)


def auto_contrast(x: jax.Array) -> jax.Array:
  """``ImageOps.autocontrast``: each channel stretched to [0, 1] (left alone when it is flat)."""
  lo, hi = x.min(axis=(0, 1), keepdims=True), x.max(axis=(0, 1), keepdims=True)
  return jnp.where(hi > lo, (x - lo) / jnp.maximum(hi - lo, 1e-12), x)


def equalize(x: jax.Array) -> jax.Array:
  """``ImageOps.equalize``: per channel, the histogram of the 256 levels mapped through its cumulative sum
  (PIL's step = (pixels - count of the last used level) // 255; no change when the step is 0)."""
  levels = _to_levels(x)

  def channel(v):
    hist = jnp.bincount(v.ravel(), length=256)
    last = hist[255 - jnp.argmax(hist[::-1] > 0)]
    step = (v.size - last) // 255
    lut = (jnp.cumsum(hist) - hist + step // 2) // jnp.maximum(step, 1)
    return jnp.where(step > 0, jnp.clip(lut, 0, 255)[v], v)

  out = jnp.stack([channel(levels[..., c]) for c in range(x.shape[-1])], axis=-1)
  return out.astype(x.dtype) / 255.0


def posterize(x: jax.Array, bits: jax.Array) -> jax.Array:
  """``ImageOps.posterize``: keep the top ``bits`` bits of each 8-bit level."""
  mask = 255 - (2 ** (8 - bits) - 1)
  return (_to_levels(x) & mask).astype(x.dtype) / 255.0


def solarize(x: jax.Array, threshold: jax.Array) -> jax.Array:
  """``ImageOps.solarize``: levels at or above ``threshold`` (of 256) inverted."""
  levels = _to_levels(x)
  return jnp.where(levels >= threshold, 255 - levels, levels).astype(x.dtype) / 255.0


def solarize_add(x: jax.Array, add: jax.Array, threshold: int = 128) -> jax.Array:
  """timm's ``solarize_add``: ``add`` levels added to the levels below ``threshold``, capped at 255."""
  levels = _to_levels(x)
  return jnp.where(levels < threshold, jnp.minimum(levels + add, 255), levels).astype(x.dtype) / 255.0


def color(x: jax.Array, factor: jax.Array) -> jax.Array:
  """``ImageEnhance.Color``: a blend with the grayscale image."""
  return _blend(_gray(x), x, factor)


def contrast(x: jax.Array, factor: jax.Array) -> jax.Array:
  """``ImageEnhance.Contrast``: a blend with the mean gray level (rounded to a level, as PIL)."""
  mean = jnp.floor(jnp.mean(_gray(x)) * 255.0 + 0.5) / 255.0
  return _blend(mean, x, factor)


def brightness(x: jax.Array, factor: jax.Array) -> jax.Array:
  """``ImageEnhance.Brightness``: a blend with black."""
  return _blend(jnp.zeros_like(x), x, factor)


def sharpness(x: jax.Array, factor: jax.Array) -> jax.Array:
  """``ImageEnhance.Sharpness``: a blend with PIL's SMOOTH filter (3x3, centre 5, the rest 1, over 13), the
  border pixels kept."""
  h, w = x.shape[0], x.shape[1]
  padded = jnp.pad(x, ((1, 1), (1, 1), (0, 0)))
  total = sum(padded[i:i + h, j:j + w] for i in range(3) for j in range(3))    # a 3x3 box sum
  smooth = (total + 4.0 * x) / 13.0
  rows, cols = jnp.arange(h)[:, None, None], jnp.arange(w)[None, :, None]
  inner = (rows > 0) & (rows < h - 1) & (cols > 0) & (cols < w - 1)
  return _blend(jnp.where(inner, smooth, x), x, factor)


def affine(x: jax.Array, matrix: jax.Array, fill: jax.Array) -> jax.Array:
  """``Image.transform(AFFINE, (a, b, c, d, e, f))``: output pixel (col, row) reads the input at
  (a col + b row + c, d col + e row + f), bilinearly, ``fill`` outside. ``matrix``: [2, 3]."""
  h, w = x.shape[0], x.shape[1]
  rows, cols = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) + 0.5, jnp.arange(w, dtype=jnp.float32) + 0.5,
                            indexing="ij")
  src_x = matrix[0, 0] * cols + matrix[0, 1] * rows + matrix[0, 2] - 0.5
  src_y = matrix[1, 0] * cols + matrix[1, 1] * rows + matrix[1, 2] - 0.5
  # PIL samples inside [0, size) before its half-pixel shift, its bilinear neighbours clamped to the edge.
  inside = (src_x >= -0.5) & (src_x < w - 0.5) & (src_y >= -0.5) & (src_y < h - 0.5)

  def channel(c, value):
    sampled = jax.scipy.ndimage.map_coordinates(c, [src_y, src_x], order=1, mode="nearest")
    return jnp.where(inside, sampled, value)

  return jnp.stack([channel(x[..., i], fill[i]) for i in range(x.shape[-1])], axis=-1)


def rotation_matrix(degrees: jax.Array, h: int, w: int) -> jax.Array:
  """``Image.rotate(degrees)``'s inverse map (counter-clockwise about the centre) as an ``affine`` matrix."""
  angle = -degrees * math.pi / 180.0
  a, b, d, e = jnp.cos(angle), jnp.sin(angle), -jnp.sin(angle), jnp.cos(angle)
  cx, cy = w / 2.0, h / 2.0
  return jnp.stack([jnp.stack([a, b, cx - a * cx - b * cy]), jnp.stack([d, e, cy - d * cx - e * cy])])


def rotate(x: jax.Array, degrees: jax.Array, fill: jax.Array) -> jax.Array:
  """``Image.rotate(degrees)``: counter-clockwise about the centre."""
  return affine(x, rotation_matrix(degrees, x.shape[0], x.shape[1]), fill)


def _signed(key: jax.Array, value: jax.Array) -> jax.Array:
  """timm's ``_randomly_negate``: the value or its negative, even odds."""
  return jnp.where(jax.random.uniform(key) < 0.5, -value, value)


_GEOMETRIC = {"Rotate": 0, "ShearX": 1, "ShearY": 2, "TranslateXRel": 3, "TranslateYRel": 4}


def _geometry(index: jax.Array, key: jax.Array, level: jax.Array, h: int, w: int) -> jax.Array:
  """The [2, 3] ``affine`` matrix of operation ``OPS[index]``: the identity unless it is geometric."""
  one, zero = jnp.ones(()), jnp.zeros(())
  shear = _signed(key, level * 0.3)
  translate = _signed(key, level * 0.45)
  candidates = jnp.stack([
      jnp.array([[one, zero, zero], [zero, one, zero]]),                         # not geometric
      rotation_matrix(_signed(key, level * 30.0), h, w),
      jnp.array([[one, shear, zero], [zero, one, zero]]),
      jnp.array([[one, zero, zero], [shear, one, zero]]),
      jnp.array([[one, zero, translate * w], [zero, one, zero]]),
      jnp.array([[one, zero, zero], [zero, one, translate * h]]),
  ])
  which = jnp.asarray([1 + _GEOMETRIC[name] if name in _GEOMETRIC else 0 for name in OPS])[index]
  return candidates[which]


def apply_op(index: jax.Array, key: jax.Array, x: jax.Array, magnitude: jax.Array, fill: jax.Array) -> jax.Array:
  """Operation ``OPS[index]`` at ``magnitude`` (0-10), timm's level-to-argument rules. The geometric ones are
  one warp whose matrix depends on the index (the identity, reproducing the image exactly, for the others), so
  a batch under ``vmap`` pays for one warp, not five."""
  level = magnitude / MAX_LEVEL
  x = affine(x, _geometry(index, key, level, x.shape[0], x.shape[1]), fill)
  enhance = lambda k: 1.0 + _signed(k, level * 0.9)
  keep = lambda k, x: x
  branches = {
      "AutoContrast": lambda k, x: auto_contrast(x),
      "Equalize": lambda k, x: equalize(x),
      "Invert": lambda k, x: 1.0 - x,
      "PosterizeIncreasing": lambda k, x: posterize(x, 4 - (level * 4).astype(jnp.int32)),
      "SolarizeIncreasing": lambda k, x: solarize(x, 256 - (level * 256).astype(jnp.int32)),
      "SolarizeAdd": lambda k, x: solarize_add(x, (level * 110).astype(jnp.int32)),
      "ColorIncreasing": lambda k, x: color(x, enhance(k)),
      "ContrastIncreasing": lambda k, x: contrast(x, enhance(k)),
      "BrightnessIncreasing": lambda k, x: brightness(x, enhance(k)),
      "SharpnessIncreasing": lambda k, x: sharpness(x, enhance(k)),
  }
  return jax.lax.switch(index, [branches.get(name, keep) for name in OPS], key, x)


def rand_augment(key: jax.Array, x: jax.Array, num_layers: int = 2, magnitude: float = 9.0,
                 magnitude_std: float = 0.5, prob: float = 0.5,
                 fill: Sequence[float] | None = None) -> jax.Array:
  """``num_layers`` random operations on one image [H, W, C] in [0, 1]; ``fill``: per channel, in [0, 1]
  (default 0.5, timm's 128)."""
  fill = jnp.asarray(fill if fill is not None else [0.5] * x.shape[-1], x.dtype)
  for layer in range(num_layers):
    k_op, k_apply, k_mag, k_arg = jax.random.split(jax.random.fold_in(key, layer), 4)
    index = jax.random.randint(k_op, (), 0, len(OPS))
    m = magnitude + magnitude_std * jax.random.normal(k_mag) if magnitude_std > 0 else jnp.asarray(magnitude)
    m = jnp.clip(m, 0.0, MAX_LEVEL)
    out = apply_op(index, k_arg, x, m, fill)
    x = jnp.where(jax.random.uniform(k_apply) < prob, out, x)
  return x
