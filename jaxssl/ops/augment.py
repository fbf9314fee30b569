"""On-device image augmentation: pure per-image ops, vmapped over the batch, and the view recipes.

Every op takes a PRNG key and one float image [H, W, C] with values in [0, 1] (C = 1 grayscale or C = 3 RGB) and
returns an image of the same dtype and range. Ops are jit- and vmap-safe: random choices become ``jnp.where``
selections, never Python branches on traced values. Randomness is explicit: the same key gives the same view.

Ops come from dm-pix where it computes what torchvision (the papers' reference code) computes: flip, rotation,
grayscale, solarize, hue. Brightness, contrast, saturation and blur are written here because dm-pix follows
TensorFlow's definitions instead; each says how. The random resized crop is written here because it is drawn
as torchvision's, with an antialiased resize.

The recipes follow SimCLR (Chen et al. 2020, appendix A) and BYOL's asymmetric pair (Grill et al. 2020, table 6),
which VICReg's official code also uses. Colour jitter uses torchvision's definitions (multiplicative brightness,
contrast and saturation blended towards grey, hue shifted in HSV) in a random order, as BYOL does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import chex
import dm_pix as pix
import jax
import jax.numpy as jnp

# ----------------------------------------------------------------------------------------------------------------
# Geometry.


INTERPOLATIONS = ("bilinear", "bicubic")


def _kernel(distance: jax.Array, interpolation: str) -> jax.Array:
  """PIL's resampling filters at ``distance`` (in input pixels, already divided by the antialiasing scale):
  the triangle (bilinear) or Keys' cubic with a = -0.5 (PIL's bicubic), which has negative lobes."""
  d = jnp.abs(distance)
  if interpolation == "bilinear":
    return jnp.maximum(0.0, 1.0 - d)
  a = -0.5
  near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
  far = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
  return jnp.where(d < 1.0, near, jnp.where(d < 2.0, far, 0.0))


def _interpolation_matrix(start: jax.Array, length: jax.Array, in_size: int, out_size: int,
                          interpolation: str = "bilinear") -> jax.Array:
  """[out_size, in_size] weights that resample the segment [start, start + length) to out_size pixels with
  ``interpolation`` (``bilinear`` or ``bicubic``).

  Pixel centres are at half-integers (as ``align_corners=False``); samples outside the image are clamped to the
  border. When the segment is shrunk the kernel is widened by the scale (antialiasing, as PIL does), and the
  weights of each output pixel are normalised over the input pixels they reach.
  """
  scale = length / out_size                                           # input pixels per output pixel
  centres = start + (jnp.arange(out_size) + 0.5) * scale - 0.5        # [out]
  centres = jnp.clip(centres, 0.0, in_size - 1.0)
  support = jnp.maximum(scale, 1.0)
  distance = (centres[:, None] - jnp.arange(in_size)[None, :]) / support
  weights = _kernel(distance, interpolation)
  return weights / jnp.sum(weights, axis=1, keepdims=True)


def crop_and_resize(image: jax.Array, top: jax.Array, left: jax.Array, height: jax.Array, width: jax.Array,
                    out_size: int, interpolation: str = "bilinear") -> jax.Array:
  """Crops the box (top, left, height, width) (float pixels) and resizes it to [out_size, out_size, C] with
  ``interpolation`` (bicubic's overshoot is clipped to [0, 1], as PIL clips to 8 bits)."""
  in_h, in_w, _ = image.shape
  rows = _interpolation_matrix(top, height, in_h, out_size, interpolation)   # [S, H]
  cols = _interpolation_matrix(left, width, in_w, out_size, interpolation)   # [S, W]
  out = jnp.einsum("sh,hwc,tw->stc", rows, image, cols)
  return out if interpolation == "bilinear" else jnp.clip(out, 0.0, 1.0)


def random_resized_crop(key: jax.Array, image: jax.Array, out_size: int,
                        scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), attempts: int = 10,
                        interpolation: str = "bilinear") -> jax.Array:
  """torchvision's RandomResizedCrop: area fraction ~ U(scale), log aspect ratio ~ U(log ratio), resized with
  ``interpolation`` (``bilinear``, torchvision's default, or ``bicubic``, DINO's and MAE's).

  As torchvision, up to ``attempts`` boxes are drawn and the first that fits inside the image is used; if none
  fits, the central crop with the aspect ratio clamped to ``ratio`` is taken.
  """
  chex.assert_rank(image, 3)
  in_h, in_w, _ = image.shape
  area = in_h * in_w
  k_area, k_ratio, k_top, k_left = jax.random.split(key, 4)
  target_area = area * jax.random.uniform(k_area, (attempts,), minval=scale[0], maxval=scale[1])
  aspect = jnp.exp(jax.random.uniform(k_ratio, (attempts,), minval=math.log(ratio[0]),
                                      maxval=math.log(ratio[1])))
  widths = jnp.round(jnp.sqrt(target_area * aspect))
  heights = jnp.round(jnp.sqrt(target_area / aspect))
  fits = (widths > 0) & (heights > 0) & (widths <= in_w) & (heights <= in_h)
  first = jnp.argmax(fits)

  in_ratio = in_w / in_h
  if in_ratio < ratio[0]:
    fallback_w, fallback_h = in_w, round(in_w / ratio[0])
  elif in_ratio > ratio[1]:
    fallback_h, fallback_w = in_h, round(in_h * ratio[1])
  else:
    fallback_w, fallback_h = in_w, in_h
  any_fits = jnp.any(fits)
  # Picking attempt `first` by a one-hot sum, not by indexing: a vmapped index is a gather, slow on the CPU.
  pick = lambda values: jnp.sum(jnp.where(jnp.arange(attempts) == first, values, 0.0))
  width = jnp.where(any_fits, pick(widths), fallback_w)
  height = jnp.where(any_fits, pick(heights), fallback_h)
  top = jnp.where(any_fits, jnp.floor(pick(jax.random.uniform(k_top, (attempts,))) * (in_h - height + 1)),
                  (in_h - height) // 2)
  left = jnp.where(any_fits, jnp.floor(pick(jax.random.uniform(k_left, (attempts,))) * (in_w - width + 1)),
                   (in_w - width) // 2)
  return crop_and_resize(image, top, left, height, width, out_size, interpolation)


def random_flip(key: jax.Array, image: jax.Array, prob: float = 0.5) -> jax.Array:
  """Horizontal flip with probability ``prob``."""
  return jnp.where(jax.random.uniform(key) < prob, pix.flip_left_right(image), image)


def rotate(image: jax.Array, degrees: jax.Array) -> jax.Array:
  """Counter-clockwise rotation by ``degrees`` about the image centre, bilinear, zero fill (torchvision's
  RandomRotation with its defaults but bilinear)."""
  return pix.rotate(image, degrees * math.pi / 180.0, order=1, mode="constant", cval=0.0)


def random_rotation(key: jax.Array, image: jax.Array, max_degrees: float, prob: float = 1.0) -> jax.Array:
  """Rotation by an angle ~ U(-max_degrees, max_degrees) about the centre, zero fill, with probability ``prob``."""
  k_apply, k_angle = jax.random.split(key)
  rotated = rotate(image, jax.random.uniform(k_angle, minval=-max_degrees, maxval=max_degrees))
  return jnp.where(jax.random.uniform(k_apply) < prob, rotated, image)


# ----------------------------------------------------------------------------------------------------------------
# Colour.


def to_grayscale(image: jax.Array) -> jax.Array:
  """ITU-R 601 luma (torchvision's weights), repeated over the channels (the identity on one-channel images)."""
  if image.shape[-1] == 1:
    return image
  return pix.rgb_to_grayscale(image, keep_dims=True, luma_standard="rec601")


def adjust_brightness(image: jax.Array, factor: jax.Array) -> jax.Array:
  """torchvision: image * factor. (dm-pix's adjust_brightness adds a delta, as TensorFlow.)"""
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image: jax.Array, factor: jax.Array) -> jax.Array:
  """torchvision: blend with the mean grey level of the image. (dm-pix blends each channel with its own mean,
  as TensorFlow.)"""
  mean = jnp.mean(to_grayscale(image)[..., 0])
  return jnp.clip(mean + factor * (image - mean), 0.0, 1.0)


def adjust_saturation(image: jax.Array, factor: jax.Array) -> jax.Array:
  """torchvision: blend with the grayscale image (the identity on one-channel images). (dm-pix scales the HSV
  saturation, as TensorFlow.)"""
  gray = to_grayscale(image)
  return jnp.clip(gray + factor * (image - gray), 0.0, 1.0)


def adjust_hue(image: jax.Array, delta: jax.Array) -> jax.Array:
  """Rotates the hue by ``delta`` turns (in [-0.5, 0.5]); the identity on one-channel images."""
  if image.shape[-1] == 1:
    return image
  return jnp.clip(pix.adjust_hue(image, delta), 0.0, 1.0)


def color_jitter(key: jax.Array, image: jax.Array, brightness: float, contrast: float, saturation: float,
                 hue: float, prob: float = 0.8) -> jax.Array:
  """Brightness, contrast, saturation and hue jitter in a random order, applied with probability ``prob``.

  Factors are drawn as torchvision's ColorJitter: brightness, contrast and saturation ~ U(1 - s, 1 + s) (clipped
  at 0), hue shift ~ U(-hue, hue). A strength of 0 makes that op the identity.
  """
  k_apply, k_order, k_b, k_c, k_s, k_h = jax.random.split(key, 6)

  def factor(k, strength):
    return jax.random.uniform(k, minval=max(0.0, 1.0 - strength), maxval=1.0 + strength)

  cheap_ops = (
      lambda x: adjust_brightness(x, factor(k_b, brightness)),
      lambda x: adjust_contrast(x, factor(k_c, contrast)),
      lambda x: adjust_saturation(x, factor(k_s, saturation)),
  )
  order = jax.random.permutation(k_order, 4)                 # 0 brightness, 1 contrast, 2 saturation, 3 hue
  # Under vmap every branch of a lax.switch is evaluated, at each of the four positions. The costly op, the hue
  # shift (RGB -> HSV -> RGB), is instead applied once, between the ops drawn before it and those drawn after
  # it: the same composition as the four in the drawn order, at a third of the cost on the CPU.
  hue_position = jnp.argmax(order == 3)

  def cheap_ops_where(x, positions, selected):
    for position in positions:
      out = x
      for index, op in enumerate(cheap_ops):
        out = jnp.where(order[position] == index, op(x), out)
      x = jnp.where(selected(position), out, x)
    return x

  jittered = cheap_ops_where(image, range(3), lambda position: position < hue_position)
  jittered = adjust_hue(jittered, jax.random.uniform(k_h, minval=-hue, maxval=hue))
  jittered = cheap_ops_where(jittered, range(1, 4), lambda position: position > hue_position)
  return jnp.where(jax.random.uniform(k_apply) < prob, jittered, image)


def random_grayscale(key: jax.Array, image: jax.Array, prob: float = 0.2) -> jax.Array:
  return jnp.where(jax.random.uniform(key) < prob, to_grayscale(image), image)


def _blur_matrix(sigma: jax.Array, size: int, radius: int) -> jax.Array:
  """[size, size] matrix applying a 1-D Gaussian of ``sigma`` (truncated at ``radius``) with reflected borders."""
  offsets = jnp.arange(-radius, radius + 1)
  taps = jnp.exp(-0.5 * (offsets / sigma) ** 2)
  taps = taps / jnp.sum(taps)
  source = jnp.arange(size)[:, None] + offsets[None, :]               # [size, 2r+1]
  source = jnp.abs(source)                                             # reflect at 0
  source = (size - 1) - jnp.abs((size - 1) - source)                   # reflect at size - 1
  # A one-hot sum rather than a scatter-add: scatters are slow under vmap on the CPU.
  one_hot = source[:, :, None] == jnp.arange(size)[None, None, :]     # [size, 2r+1, size]
  return jnp.einsum("o,sot->st", taps, one_hot.astype(taps.dtype))


def gaussian_blur(image: jax.Array, sigma: jax.Array, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur, written as two small matrix products (fast on every backend). Borders are
  reflected, as torchvision's GaussianBlur; dm-pix's gaussian_blur pads with zeros, which darkens the edges."""
  radius = max(kernel_size // 2, 1)
  height, width, _ = image.shape
  rows = _blur_matrix(sigma, height, min(radius, height - 1))
  cols = _blur_matrix(sigma, width, min(radius, width - 1))
  return jnp.einsum("sh,hwc,tw->stc", rows, image, cols)


def random_blur(key: jax.Array, image: jax.Array, prob: float, sigma: tuple[float, float] = (0.1, 2.0),
                kernel_fraction: float = 0.1) -> jax.Array:
  """Gaussian blur with sigma ~ U(sigma) and kernel ~ 10% of the image side (SimCLR), with probability prob."""
  k_apply, k_sigma = jax.random.split(key)
  s = jax.random.uniform(k_sigma, minval=sigma[0], maxval=sigma[1])
  kernel_size = max(3, int(round(kernel_fraction * image.shape[0])) | 1)
  blurred = gaussian_blur(image, s, kernel_size)
  return jnp.where(jax.random.uniform(k_apply) < prob, blurred, image)


def solarize(image: jax.Array, threshold: float = 0.5) -> jax.Array:
  """Inverts the pixels at or above ``threshold``."""
  return pix.solarize(image, threshold)


def random_solarize(key: jax.Array, image: jax.Array, prob: float) -> jax.Array:
  return jnp.where(jax.random.uniform(key) < prob, solarize(image), image)


# ----------------------------------------------------------------------------------------------------------------
# Random erasing (Zhong et al. 2020, arXiv:1708.04896), on normalised images.


def random_erasing(key: jax.Array, image: jax.Array, prob: float = 0.25, area: tuple[float, float] = (0.02, 1 / 3),
                   aspect: tuple[float, float] = (0.3, 1 / 0.3), attempts: int = 10) -> jax.Array:
  """timm's ``RandomErasing`` (mode ``pixel``, one box), MAE's and DeiT's fine-tuning setting: with probability
  ``prob``, a box of ``area`` times the image's area (uniform) and aspect ratio log-uniform in ``aspect`` is
  filled with N(0, 1) noise per pixel and channel. Of ``attempts`` candidate boxes the first that fits inside
  the image is used; none fitting, the image is left as it is. [H, W, C] -> [H, W, C]."""
  height, width = image.shape[0], image.shape[1]
  k_apply, k_area, k_aspect, k_top, k_left, k_noise = jax.random.split(key, 6)
  target = jax.random.uniform(k_area, (attempts,), minval=area[0], maxval=area[1]) * height * width
  ratio = jnp.exp(jax.random.uniform(k_aspect, (attempts,), minval=math.log(aspect[0]), maxval=math.log(aspect[1])))
  h = jnp.round(jnp.sqrt(target * ratio)).astype(jnp.int32)
  w = jnp.round(jnp.sqrt(target / ratio)).astype(jnp.int32)
  fits = (w < width) & (h < height)
  first = jnp.argmax(fits)
  h, w = h[first], w[first]
  top = jax.random.randint(k_top, (), 0, height - h + 1)
  left = jax.random.randint(k_left, (), 0, width - w + 1)
  rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
  box = (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)
  erase = box & fits[first] & (jax.random.uniform(k_apply) < prob)
  noise = jax.random.normal(k_noise, image.shape, image.dtype)
  return jnp.where(erase[..., None], noise, image)


# ----------------------------------------------------------------------------------------------------------------
# Views.


@dataclasses.dataclass(frozen=True)
class ViewRecipe:
  """The random transformation that produces one view. Hashable: it is static under jit."""
  size: int = 32
  crop_scale: tuple[float, float] = (0.08, 1.0)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.5
  rotation_prob: float = 0.0
  rotation_degrees: float = 0.0
  jitter_prob: float = 0.8
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.2
  hue: float = 0.1
  grayscale_prob: float = 0.2
  blur_prob: float = 0.0
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  solarize_prob: float = 0.0
  randaugment_layers: int = 0                  # > 0: RandAugment after the flip (jaxssl.ops.randaugment)
  randaugment_magnitude: float = 9.0
  randaugment_magnitude_std: float = 0.5
  randaugment_fill: tuple[float, ...] = (0.5,)  # per channel (one value: every channel), in [0, 1]
  # Where the crop is taken on the host, its flip and RandAugment are too (jaxssl.data.host_randaugment).
  randaugment_on_host: bool = False
  interpolation: str = "bilinear"              # the crop's resize (and host RandAugment's warps): or bicubic

  def apply(self, key: jax.Array, image: jax.Array) -> jax.Array:
    """One view of one image: [H, W, C] in [0, 1] -> [size, size, C] in [0, 1]."""
    crop_key = jax.random.split(key, 7)[0]
    x = random_resized_crop(crop_key, image, self.size, self.crop_scale, self.crop_ratio,
                            interpolation=self.interpolation)
    return self.apply_after_crop(key, x)

  @property
  def host_flips_and_augments(self) -> bool:
    """Whether the host, when it crops this view, also flips and RandAugments it (``randaugment_on_host``)."""
    return self.randaugment_on_host and self.randaugment_layers > 0

  def after_host_crop(self) -> "ViewRecipe":
    """What is left for the device of a view the host has cropped (``jaxssl.data.host_crops``): everything
    but the crop, and also but the flip and RandAugment when the host did those."""
    if self.host_flips_and_augments:
      return dataclasses.replace(self, flip_prob=0.0, randaugment_layers=0)
    return self

  def apply_after_crop(self, key: jax.Array, x: jax.Array) -> jax.Array:
    """Everything but the random resized crop, on a crop already taken (on the host, from the full image):
    [size, size, C] in [0, 1] -> the same shape. Uses the same keys as ``apply``, so a view differs from the
    device-cropped one only by its crop."""
    keys = jax.random.split(key, 7)
    if self.flip_prob > 0:
      x = random_flip(keys[1], x, self.flip_prob)
    if self.randaugment_layers > 0:
      from jaxssl.ops.randaugment import rand_augment

      fill = self.randaugment_fill * (x.shape[-1] if len(self.randaugment_fill) == 1 else 1)
      x = rand_augment(jax.random.fold_in(key, 7), x, self.randaugment_layers, self.randaugment_magnitude,
                       self.randaugment_magnitude_std, fill=fill)
    if self.rotation_prob > 0 and self.rotation_degrees > 0:
      x = random_rotation(keys[2], x, self.rotation_degrees, self.rotation_prob)
    if self.jitter_prob > 0:
      x = color_jitter(keys[3], x, self.brightness, self.contrast, self.saturation, self.hue, self.jitter_prob)
    if self.grayscale_prob > 0:
      x = random_grayscale(keys[4], x, self.grayscale_prob)
    if self.blur_prob > 0:
      x = random_blur(keys[5], x, self.blur_prob, self.blur_sigma)
    if self.solarize_prob > 0:
      x = random_solarize(keys[6], x, self.solarize_prob)
    return x


def simclr_recipes(size: int, crop_scale=(0.08, 1.0), blur_prob: float = 0.5, strength: float = 1.0,
                   **view_fields) -> tuple[ViewRecipe, ViewRecipe]:
  """SimCLR: two identically distributed views; colour jitter (0.8, 0.8, 0.8, 0.2) x strength, p 0.8.
  ``view_fields``: other ViewRecipe fields (rotation_prob, rotation_degrees)."""
  view = ViewRecipe(size=size, crop_scale=crop_scale, brightness=0.8 * strength, contrast=0.8 * strength,
                    saturation=0.8 * strength, hue=0.2 * strength, blur_prob=blur_prob, **view_fields)
  return view, view


def byol_recipes(size: int, crop_scale=(0.08, 1.0), blur_probs=(1.0, 0.1), solarize_probs=(0.0, 0.2),
                 **view_fields) -> tuple[ViewRecipe, ViewRecipe]:
  """BYOL's asymmetric pair: jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2; blur 1.0 / 0.1; solarize 0 / 0.2.
  ``view_fields``: other ViewRecipe fields (rotation_prob, rotation_degrees)."""
  return tuple(ViewRecipe(size=size, crop_scale=crop_scale, blur_prob=b, solarize_prob=s, **view_fields)
               for b, s in zip(blur_probs, solarize_probs))


def multicrop_recipes(global_views: Sequence[ViewRecipe], local_size: int, num_local: int,
                      local_scale: tuple[float, float] = (0.05, 0.14)) -> tuple[ViewRecipe, ...]:
  """Multi-crop (SwAV, DINO): the global views, then ``num_local`` small crops of ``local_size`` pixels drawn
  with the first global view's colour and blur settings at ``local_scale``."""
  local = dataclasses.replace(global_views[0], size=local_size, crop_scale=local_scale)
  return tuple(global_views) + (local,) * num_local


def to_float(images: jax.Array) -> jax.Array:
  """uint8 [..., H, W, C] in [0, 255] -> float32 in [0, 1]."""
  return images.astype(jnp.float32) / 255.0


def views_of_crops(keys: jax.Array, crops: Sequence[jax.Array], recipes: Sequence[ViewRecipe]) -> list[jax.Array]:
  """The views of crops taken on the host (``jaxssl.data.HostCropper``): the rest of each recipe on device
  (``ViewRecipe.after_host_crop``).

  Args:
    keys: [B] PRNG keys, one per image (as for ``views``).
    crops: one uint8 [B, size, size, C] array per recipe, at that recipe's size.
    recipes: one ViewRecipe per view.

  Returns:
    A list of len(recipes) float32 arrays [B, size, size, C] in [0, 1].
  """
  if len(crops) != len(recipes):
    raise ValueError(f"{len(crops)} host crops for {len(recipes)} view recipes")
  out = []
  for index, (crop, recipe) in enumerate(zip(crops, recipes)):
    chex.assert_axis_dimension(crop, 1, recipe.size)
    view_keys = jax.vmap(lambda k: jax.random.fold_in(k, index))(keys)
    out.append(jax.vmap(recipe.after_host_crop().apply_after_crop)(view_keys, to_float(crop)))
  return out


def views(keys: jax.Array, images: jax.Array, recipes: Sequence[ViewRecipe]) -> list[jax.Array]:
  """Makes one view per recipe of every image.

  Args:
    keys: [B] PRNG keys, one per image (derive them from the image's global index for layout independence).
    images: [B, H, W, C] uint8 or float in [0, 1].
    recipes: one ViewRecipe per view.

  Returns:
    A list of len(recipes) float32 arrays [B, size, size, C] in [0, 1].
  """
  chex.assert_rank(images, 4)
  chex.assert_axis_dimension(keys, 0, images.shape[0])
  if images.dtype == jnp.uint8:
    images = to_float(images)
  out = []
  for index, recipe in enumerate(recipes):
    view_keys = jax.vmap(lambda k: jax.random.fold_in(k, index))(keys)
    out.append(jax.vmap(recipe.apply)(view_keys, images))
  return out
