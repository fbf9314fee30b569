"""I-JEPA (Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture", arXiv:2301.08243; official ``src/train.py``).

One crop per image; per batch, one target block size and one context block size; per example, four target blocks
and a context block with the targets removed (``jaxssl.ops.multiblock``, the official collator's draws). The
context encoder sees the context patches only; a narrow ViT predictor predicts, from them and mask tokens at
each target's positions, the EMA target encoder's layer-normalised tokens of the full image there; the loss is
their smooth L1 distance. No pixel reconstruction, no photometric augmentation. The block sizes come from a key of
the step and the positions from the per-example keys, so 8 devices give the same step as 1.

Differences from the official encoder: jaxssl's ViT has a class token (the context encoder carries it along;
nothing reads it, and evaluation pools the patch tokens, ``model.pool=mean``, as I-JEPA's probes do); the
predictor's residual projections are not rescaled by depth at initialisation (``fix_init_weight``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base
from jaxssl.methods.base import check_momentum, ema_schedule
from jaxssl.models.ijepa import IJEPANetwork, Predictor, target_tokens
from jaxssl.ops import augment, losses, multiblock

_MASK_STREAM, _DROP_STREAM = 0, 1
_SIZES_TAG = 0x1E9A


def context_keep(m, grid: tuple[int, int]) -> int:
  """The most patches a context keeps: ``method.context_keep``, or ``multiblock.default_context_keep`` (the
  official batches' median cut) when 0."""
  return m.context_keep or multiblock.default_context_keep(grid, m.num_targets, tuple(m.target_scale),
                                                           tuple(m.target_aspect), tuple(m.context_scale), m.min_keep)


def sizes_key(seed: int, step) -> jax.Array:
  """The key of a step's block sizes: from the run's seed and the step only, the same on every device."""
  return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), _SIZES_TAG), step)


def masks_for(step_key: jax.Array, keys: jax.Array, grid: tuple[int, int], m) -> multiblock.MultiBlock:
  """The batch's context and target blocks: their sizes from ``step_key``, their positions from the examples'
  keys."""
  return multiblock.multiblock_masks(step_key, base.stream(keys, _MASK_STREAM), grid, m.num_targets,
                                     tuple(m.target_scale), tuple(m.target_aspect), tuple(m.context_scale),
                                     context_keep(m, grid), m.min_keep)


def view_masks(config, keys) -> list:
  """[N, L] for the one view: 1 on the target blocks (predicted), 0 on the context the encoder sees, 0.5 on the
  rest (neither), as a step's first batch draws them: for the pictures."""
  grid = (config.augment.size // config.model.patch_size,) * 2
  blocks = masks_for(sizes_key(config.seed, 0), keys, grid, config.method)
  n, num_patches = keys.shape[0], grid[0] * grid[1]
  rows = jnp.arange(n)[:, None]
  seen = jnp.zeros((n, num_patches)).at[rows, blocks.context].max(blocks.context_valid().astype(jnp.float32))
  targets = blocks.targets.reshape(n, -1)
  real = jnp.broadcast_to((jnp.arange(blocks.targets.shape[-1]) < blocks.target_count)[None, None],
                          blocks.targets.shape).reshape(n, -1)
  predicted = jnp.zeros((n, num_patches)).at[rows, targets].max(real.astype(jnp.float32))
  return [jnp.where(predicted > 0, 1.0, jnp.where(seen > 0, 0.0, 0.5))]


def _recipes(config):
  """A random resized crop, nothing else (official: no flip, no colour)."""
  return (augment.ViewRecipe(**base.recipe_kwargs(config), flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0),)


def make(config) -> base.Method:
  m = config.method
  grid = (config.augment.size // config.model.patch_size,) * 2

  def make_model(config, encoder, axis_name, dtype):
    return IJEPANetwork(encoder, Predictor(encoder.dim, m.predictor_dim, m.predictor_depth, m.predictor_heads,
                                           weight_init=encoder.weight_init, dtype=dtype,
                                           gather_axis=encoder.gather_axis))

  def loss(model, online, target, inputs):
    images = inputs.views[0]
    masks = masks_for(sizes_key(config.seed, inputs.step), inputs.keys, grid, m)
    predictions = model.apply({"params": online.params}, images, masks, base.stream(inputs.keys, _DROP_STREAM),
                              train=True)
    targets = target_tokens(model.encoder, target.params["encoder"], images, masks.targets)
    value = losses.ijepa_loss(predictions, targets, inputs.axis_name, valid=masks.target_valid())
    metrics = {"loss": value, "target_patches": masks.target_count.astype(jnp.float32),
               "context_patches": masks.context_count.mean()}
    return base.LossOutput(value, metrics, online.batch_stats)

  return base.Method(name="ijepa", make_model=make_model, recipes=_recipes, loss=loss,
                     ema=ema_schedule(m.base_momentum, "linear"), ema_parts=("encoder",), drop_path=True,
                     per_example_loss=True,
                     no_online_probe="its encoder sees only the context block; an online probe would need a "
                     "second encoder pass over the whole image; use the kNN and linear probe (eval.linear_probe) "
                     "on full images instead")


def defaults():
  """The official ViT-H/14 ImageNet config (``configs/in1k_vith14_ep300.yaml``): 4 target blocks of scale
  0.15-0.2 and aspect 0.75-1.5, one context block of scale 0.85-1.0, blocks of more than 10 patches
  (``min_keep``), a predictor 384 wide and 12 deep (16 heads, the encoder's), EMA 0.996 -> 1 linearly.
  ``context_keep`` 0: ``multiblock.default_context_keep``."""
  return {"num_targets": 4, "target_scale": (0.15, 0.2), "target_aspect": (0.75, 1.5),
          "context_scale": (0.85, 1.0), "context_keep": 0, "min_keep": 10, "predictor_dim": 384,
          "predictor_depth": 12, "predictor_heads": 16, "base_momentum": 0.996}


def check(config) -> None:
  if config.model.pos_embed == "rope":
    config_checks.fail("model.pos_embed", "rope", "I-JEPA's encoder sees a subset of the patches; RoPE here rotates "
                       "the whole grid: use learned or sincos")
  m = config.method
  if not config.model.encoder.startswith("vit"):
    config_checks.fail("model.encoder", config.model.encoder, "I-JEPA predicts patch tokens: use a ViT (vit_*)")
  config_checks.positive_int(config, "method.num_targets")
  config_checks.ordered_pair(config, "method.target_scale", 0.0, 1.0)
  config_checks.ordered_pair(config, "method.context_scale", 0.0, 1.0)
  config_checks.ordered_pair(config, "method.target_aspect", 1e-2, 1e2)
  config_checks.non_negative_int(config, "method.context_keep")
  for field in ("predictor_dim", "predictor_depth", "predictor_heads"):
    config_checks.positive_int(config, f"method.{field}")
  if m.predictor_dim % m.predictor_heads or m.predictor_dim % 4:
    config_checks.fail("method.predictor_dim", m.predictor_dim,
                       "must be divisible by method.predictor_heads and by 4 (sine-cosine positions)")
  config_checks.non_negative_int(config, "method.min_keep")
  grid = (config.augment.size // max(config.model.patch_size, 1),) * 2
  # The official collator redraws a block until it keeps more than min_keep patches: never, for smaller blocks.
  for kind, scale, aspect in (("target", m.target_scale, m.target_aspect), ("context", m.context_scale, (1.0, 1.0))):
    smallest = multiblock.smallest_block(grid, tuple(scale), tuple(aspect))
    where = f"the smallest {kind} block of the {grid} patch grid (augment.size / model.patch_size)"
    if smallest == 0:
      config_checks.fail(f"method.{kind}_scale", tuple(scale), f"{where} has no patch")
    if smallest <= m.min_keep:
      config_checks.fail("method.min_keep", m.min_keep, f"{where} has {smallest} patches (method.{kind}_scale "
                         f"{tuple(scale)}): every block needs more than min_keep")
  largest = multiblock.largest_block(grid, tuple(m.context_scale), (1.0, 1.0))
  if m.context_keep > largest:
    config_checks.fail("method.context_keep", m.context_keep,
                       f"more than the largest context block of the {grid} patch grid ({largest} patches)")
  check_momentum(config)


def config_defaults() -> dict:
  """The official encoder and optimizer: a ViT (the micro one for the default 28 px images) with fixed
  sine-cosine positions, evaluated on its mean patch token; blocks of more than 4 patches (7 x 7 grids); AdamW lr 1e-3 at batch 2048 (1.25e-4 x batch /
  256) to a minimum of 1e-6, weight decay 0.04 -> 0.4; crops of scale (0.3, 1); no online probe."""
  return {"model.encoder": "vit_micro", "model.patch_size": 4, "model.pos_embed": "sincos", "model.pool": "mean",
          # The default 28 px crops in 4 px patches: targets of 6-12 patches, so blocks of more than 4 (the
          # official collator's own default; its configs' 10 is for 14 x 14 and 16 x 16 grids).
          "method.min_keep": 4,
          "optim.name": "adamw", "optim.base_lr": 1.25e-4, "optim.min_lr": 1e-6, "optim.weight_decay": 0.04,
          "optim.weight_decay_end": 0.4, "augment.crop_scale": (0.3, 1.0), "eval.online_probe": False}


def small(batch_size: int) -> dict:
  # A 4 x 4 grid: targets of 1-3 patches, so any block that keeps a patch.
  return {"method.predictor_dim": 32, "method.predictor_depth": 1, "method.predictor_heads": 2,
          "method.min_keep": 0}
