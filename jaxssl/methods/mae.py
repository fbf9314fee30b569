"""MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners", arXiv:2111.06377).

One view per image (a random resized crop and a flip), 75% of its patches removed at random, the encoder on the
rest, the decoder reconstructing the removed patches' pixels (normalised per patch). The masks come from the
per-example keys, so 8 devices give the same step as 1.
"""

from __future__ import annotations

from jaxssl.common import config_checks
from jaxssl.methods import base
from jaxssl.models.mae import MaskedAutoencoder
from jaxssl.models.vit import paste_predictions, patchify
from jaxssl.ops import losses, masking

_MASK_STREAM, _DROP_STREAM = 0, 1


def masks_for(keys, num_patches: int, mask_ratio: float) -> masking.Masking:
  """The examples' random masks, from their keys (the step's ``inputs.keys``)."""
  return masking.random_masking(masking.uniform_noise(base.stream(keys, _MASK_STREAM), num_patches), mask_ratio)


def view_masks(config, keys) -> list:
  """[N, L] per view, 1 where a patch is removed (and predicted), as the step draws them: for the pictures."""
  num_patches = (config.augment.size // config.model.patch_size) ** 2
  return [masks_for(keys, num_patches, config.method.mask_ratio).mask]


def make(config) -> base.Method:
  m = config.method
  patch = config.model.patch_size

  def make_model(config, encoder, axis_name, dtype):
    return MaskedAutoencoder(encoder, m.decoder_dim, m.decoder_depth, m.decoder_heads, dtype=dtype)

  def loss(model, online, target, inputs):
    images = inputs.views[0]
    patches = patchify(images, patch)
    masks = masks_for(inputs.keys, patches.shape[1], m.mask_ratio)
    predictions = model.apply({"params": online.params}, images, masks, base.stream(inputs.keys, _DROP_STREAM),
                              train=True)
    value = losses.mae_loss(predictions, patches, masks.mask, m.norm_pix_loss, axis_name=inputs.axis_name)
    return base.LossOutput(value, {"loss": value}, online.batch_stats)

  return base.Method(name="mae", make_model=make_model, recipes=base.crop_and_flip, loss=loss, drop_path=True,
                     per_example_loss=True,
                     no_online_probe="its encoder sees only the visible patches; an online probe would need a "
                     "second encoder pass over all of them (4x the tokens at mask ratio 0.75); use the kNN and "
                     "linear probe (eval.linear_probe) on full images instead")


def reconstruction(config) -> base.ReconstructFn:
  """The paper's Figure 2 (``python -m jaxssl.plot``): (model, online, images [N, H, W, C], keys [N]) ->
  (removed [N, H, W, 1], 1 where a pixel's patch was removed; the reconstruction [N, H, W, C] in the normalised
  images' units, the visible patches pasted in), the masks drawn from ``keys`` as in training. With per-patch
  normalised targets the predictions are mapped back with each true patch's mean and std (as the official
  visualisation does)."""
  m, patch = config.method, config.model.patch_size

  def reconstruct(model, online, images, keys):
    patches = patchify(images, patch)
    masks = masks_for(keys, patches.shape[1], m.mask_ratio)
    predicted = model.apply({"params": online.params}, images, masks)
    if m.norm_pix_loss:
      mean, std = losses.patch_statistics(patches)
      predicted = predicted * std + mean
    return paste_predictions(images, patches, predicted, masks.mask, patch)

  return reconstruct


def defaults():
  """The official ``main_pretrain.py``: mask ratio 0.75, decoder 512 wide, 8 blocks, 16 heads, per-patch
  normalised targets (``--norm_pix_loss``, the paper's setting)."""
  return {"mask_ratio": 0.75, "decoder_dim": 512, "decoder_depth": 8, "decoder_heads": 16, "norm_pix_loss": True}


def check(config) -> None:
  if config.model.pos_embed == "rope":
    config_checks.fail("model.pos_embed", "rope", "MAE's encoder sees a subset of the patches; RoPE here rotates "
                       "the whole grid: use learned or sincos")
  if not config.model.encoder.startswith("vit"):
    config_checks.fail("model.encoder", config.model.encoder, "MAE masks patches: use a ViT (vit_*)")
  if not config.model.class_token:
    config_checks.fail("model.class_token", config.model.class_token,
                       "MAE's decoder takes the encoder's class token: keep it")
  config_checks.in_range(config, "method.mask_ratio", 0.0, 1.0, closed_high=False)
  num_patches = (config.augment.size // max(config.model.patch_size, 1)) ** 2
  kept = masking.num_kept(num_patches, config.method.mask_ratio)
  if kept < 1:
    config_checks.fail("method.mask_ratio", config.method.mask_ratio,
                       f"keeps no patch of the {num_patches} in a view (augment.size / model.patch_size squared)")
  if kept >= num_patches:       # the loss averages over the masked patches: none would be 0 / 0
    config_checks.fail("method.mask_ratio", config.method.mask_ratio,
                       f"masks no patch of the {num_patches} in a view: MAE's loss is over the masked patches")
  config_checks.positive_int(config, "method.decoder_dim")
  config_checks.positive_int(config, "method.decoder_depth")
  config_checks.positive_int(config, "method.decoder_heads")
  if config.method.decoder_dim % config.method.decoder_heads or config.method.decoder_dim % 4:
    config_checks.fail("method.decoder_dim", config.method.decoder_dim,
                       "must be divisible by method.decoder_heads and by 4 (sine-cosine positions)")


def config_defaults() -> dict:
  """The official recipe's settings outside ``config.method``: a ViT (here the micro one, for the default 28 px
  images) with fixed sine-cosine positions and MAE's initialisation, AdamW with betas (0.9, 0.95), lr 1.5e-4 x
  batch / 256, weight decay 0.05, crops of scale (0.2, 1); no online probe (the encoder sees a quarter of the
  patches)."""
  return {"model.encoder": "vit_micro", "model.patch_size": 4, "model.pos_embed": "sincos",
          "model.weight_init": "mae", "optim.name": "adamw", "optim.base_lr": 1.5e-4, "optim.weight_decay": 0.05,
          "optim.b1": 0.9, "optim.b2": 0.95, "augment.crop_scale": (0.2, 1.0), "eval.online_probe": False}


def small(batch_size: int) -> dict:
  return {"method.decoder_dim": 32, "method.decoder_depth": 1, "method.decoder_heads": 2}
