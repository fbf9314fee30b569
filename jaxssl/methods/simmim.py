"""SimMIM (Xie et al. 2022, "SimMIM: A Simple Framework for Masked Image Modeling", arXiv:2111.09886), as the
official code (microsoft/SimMIM: ``models/simmim.py``, ``data/data_simmim.py``'s ``MaskGenerator``).

One view per image (a random resized crop of 67-100% and a flip); ``method.mask_ratio`` (60%) of its
``method.mask_patch_size`` px squares (32 px: 2 x 2 patches of a ViT/16) masked at random, each image the same
count; the ViT runs on every patch with a learned mask token in place of the masked ones' embeddings, and one
linear layer predicts each patch's pixels; the loss is the L1 error on the masked pixels (``losses.simmim_loss``).
The masks come from the per-example keys, so 8 devices give the same step as 1.

Where this departs from the official ViT recipe: the official ViT has no absolute position embedding but a
relative position bias shared by its blocks (``USE_SHARED_RPB``); ours takes ``model.pos_embed``. Its
multi-step learning rate (x 0.1 at epoch 700 of 800) is a cosine here, and its warm-up starts at 5e-7, not 0.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base
from jaxssl.models.simmim import SimMIMNetwork
from jaxssl.models.vit import paste_predictions, patchify
from jaxssl.ops import augment, losses, masking

_MASK_STREAM, _DROP_STREAM = 0, 1


def block_masks(keys: jax.Array, grid: int, scale: int, mask_ratio: float) -> jax.Array:
  """The official ``MaskGenerator`` from each example's key: of the (grid / scale)^2 squares of scale x scale
  patches, ceil(count x mask_ratio) chosen at random (a random permutation's first), each square's patches
  masked. Returns [N, grid * grid] float32, 1 where a patch is masked, row-major."""
  side = grid // scale
  count = side * side
  masked = int(math.ceil(count * mask_ratio))
  noise = masking.uniform_noise(base.stream(keys, _MASK_STREAM), count)
  rank = jnp.argsort(jnp.argsort(noise, axis=1), axis=1)                 # each square's place in a permutation
  squares = (rank < masked).astype(jnp.float32).reshape(-1, side, side)
  return jnp.repeat(jnp.repeat(squares, scale, axis=1), scale, axis=2).reshape(-1, grid * grid)


def masks_for(config, keys: jax.Array) -> jax.Array:
  """The step's patch masks [N, L] for a config's view size, patch and mask sizes."""
  patch = config.model.patch_size
  return block_masks(keys, config.augment.size // patch, config.method.mask_patch_size // patch,
                     config.method.mask_ratio)


def view_masks(config, keys) -> list:
  """[N, L] per view, 1 where a patch is masked, as the step draws them: for the pictures."""
  return [masks_for(config, keys)]


def make(config) -> base.Method:
  patch = config.model.patch_size

  def make_model(config, encoder, axis_name, dtype):
    return SimMIMNetwork(encoder, channels=len(config.data.mean), dtype=dtype)

  def loss(model, online, target, inputs):
    images = inputs.views[0]
    masked = masks_for(config, inputs.keys)
    predictions = model.apply({"params": online.params}, images, masked, base.stream(inputs.keys, _DROP_STREAM),
                              train=True)
    value = losses.simmim_loss(predictions, patchify(images, patch), masked, images.shape[-1],
                               axis_name=inputs.axis_name)
    return base.LossOutput(value, {"loss": value}, online.batch_stats)

  return base.Method(name="simmim", make_model=make_model, recipes=recipes, loss=loss, drop_path=True,
                     per_example_loss=True,
                     no_online_probe="its encoder sees mask tokens in place of 60% of the patches; an online probe "
                     "would need a second pass over the unmasked images; use the kNN and linear probe "
                     "(eval.linear_probe) on full images instead")


def recipes(config) -> tuple[augment.ViewRecipe]:
  """The official ``SimMIMTransform``: a random resized crop (``augment.crop_scale``, 67-100%) and a flip."""
  return base.crop_and_flip(config)


def reconstruction(config) -> base.ReconstructFn:
  """The masked patches and their reconstruction (``python -m jaxssl.plot``): (model, online, images, keys) ->
  (masked [N, H, W, 1], the images with the masked patches' predictions pasted in [N, H, W, C])."""
  patch = config.model.patch_size

  def reconstruct(model, online, images, keys):
    masked = masks_for(config, keys)
    predicted = model.apply({"params": online.params}, images, masked)
    return paste_predictions(images, patchify(images, patch), predicted, masked, patch)

  return reconstruct


def defaults():
  """The official ViT recipe's masks (``DATA.MASK_RATIO``, ``DATA.MASK_PATCH_SIZE``): 60% of 32 px squares."""
  return {"mask_ratio": 0.6, "mask_patch_size": 32}


def check(config) -> None:
  m, patch, size = config.method, config.model.patch_size, config.augment.size
  if not config.model.encoder.startswith("vit"):
    config_checks.fail("model.encoder", config.model.encoder, "SimMIM masks patches: use a ViT (vit_*)")
  config_checks.in_range(config, "method.mask_ratio", 0.0, 1.0, closed_high=False)
  if m.mask_ratio <= 0:
    config_checks.fail("method.mask_ratio", m.mask_ratio, "masks nothing: SimMIM's loss is over the masked pixels")
  config_checks.positive_int(config, "method.mask_patch_size")
  if m.mask_patch_size % max(patch, 1) or size % m.mask_patch_size:
    config_checks.fail("method.mask_patch_size", m.mask_patch_size,
                       f"must be a multiple of model.patch_size ({patch}) and divide augment.size ({size}), as the "
                       "official MaskGenerator asserts")


def config_defaults() -> dict:
  """The official ViT-B recipe outside ``config.method``: a ViT (the micro one for the default 28 px images, in
  4 px patches, so the Fashion squares are single patches: ``configs/simmim.py``), LayerScale 0.1
  (``INIT_VALUES``), AdamW lr 1e-4 x batch / 512 (5e-5 per 256), betas (0.9, 0.999), weight decay 0.05, global
  gradient norm clipped to 5, minimum lr 5e-6 x batch / 512 (2.5e-6 at the default batch of 256; ``optim.min_lr``
  does not scale), drop path 0.1; crops of 67-100%; no online probe."""
  return {"model.encoder": "vit_micro", "model.patch_size": 4, "model.layer_scale": 0.1,
          "model.drop_path_rate": 0.1, "optim.name": "adamw", "optim.base_lr": 5e-5, "optim.b1": 0.9,
          "optim.b2": 0.999, "optim.weight_decay": 0.05, "optim.min_lr": 2.5e-6, "optim.clip_grad_norm": 5.0,
          "augment.crop_scale": (0.67, 1.0), "method.mask_patch_size": 4, "eval.online_probe": False}


def small(batch_size: int) -> dict:
  return {"model.drop_path_rate": 0.0, "method.mask_patch_size": 8}      # squares of 2 x 2 patches
