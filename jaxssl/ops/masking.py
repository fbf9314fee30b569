"""Per-example patch masks as pure functions of per-example randomness (so 8 devices give the same masks as 1,
and a resumed run the same as an uninterrupted one). Shapes are static: every example keeps the same number of
patches, so the masked encoder compiles once.

Two kinds (I-JEPA's multi-block masks, drawn per batch and per example, are ``jaxssl.ops.multiblock``):

- MAE's random masking (He et al. 2022, arXiv:2111.06377, official ``models_mae.random_masking``);
- BEiT's / iBOT's blockwise masks (Bao et al. 2022, arXiv:2106.08254; Zhou et al. 2022, arXiv:2111.07832,
  the official ``ImageFolderMask``): rectangles of random area and aspect ratio until a drawn share of the patches
  is masked. The student sees a mask token there, so every example keeps all its tokens and the share may vary.
  DINOv2 draws the shares of a batch together (``stratified_mask_counts``): half the images masked, their
  shares spread evenly over 10-50%.

The official samplers are Python loops over ``random``; here each is a ``lax.while_loop`` over the same draws
(per-example keys instead of a global generator), vmapped over the batch.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class Masking(NamedTuple):
  """ids_keep int32 [N, K]: the kept patches, lowest noise first; mask float32 [N, L]: 0 kept, 1 removed, in
  the patches' own order; ids_restore int32 [N, L]: the inverse permutation (position of each patch in the
  shuffled order: kept tokens followed by mask tokens, gathered with it, come back in the patches' order)."""
  ids_keep: jax.Array
  mask: jax.Array
  ids_restore: jax.Array


def num_kept(num_patches: int, mask_ratio: float) -> int:
  """The official count of kept patches: ``int(L * (1 - mask_ratio))``."""
  return int(num_patches * (1 - mask_ratio))


def random_masking(noise: jax.Array, mask_ratio: float) -> Masking:
  """MAE's random masking from ``noise`` [N, L] (uniform in [0, 1) in the official code): each example keeps
  its ``int(L * (1 - mask_ratio))`` lowest-noise patches."""
  n, length = noise.shape
  keep = num_kept(length, mask_ratio)
  ids_shuffle = jnp.argsort(noise, axis=1)
  ids_restore = jnp.argsort(ids_shuffle, axis=1)
  shuffled_mask = jnp.concatenate([jnp.zeros((n, keep)), jnp.ones((n, length - keep))], axis=1)
  mask = jnp.take_along_axis(shuffled_mask, ids_restore, axis=1)
  return Masking(ids_shuffle[:, :keep].astype(jnp.int32), mask.astype(jnp.float32), ids_restore.astype(jnp.int32))


def uniform_noise(keys: jax.Array, num_patches: int) -> jax.Array:
  """[N] per-example keys -> [N, L] uniform noise, one row from each example's key."""
  return jax.vmap(lambda k: jax.random.uniform(k, (num_patches,)))(keys)


# ----------------------------------------------------------------------------------------------------------------
# iBOT's blockwise masks.


def prediction_ratios(keys: jax.Array, ratios: Sequence[float], ratio_vars: Sequence[float]) -> jax.Array:
  """[N] keys -> [N] shares of patches to mask, iBOT's ``get_pred_ratio``: one of ``ratios`` chosen uniformly,
  each widened to uniform(r - var, r + var) by its ``ratio_vars`` entry. ``(0.0, 0.3), (0.0, 0.2)`` (iBOT's
  ViT-S/16 recipe): half the images unmasked, the others masked 10-50%."""
  ratios, ratio_vars = jnp.asarray(ratios, jnp.float32), jnp.asarray(ratio_vars, jnp.float32)

  def one(key):
    choice, spread = jax.random.split(key)
    i = jax.random.randint(choice, (), 0, ratios.shape[0])
    return ratios[i] + ratio_vars[i] * jax.random.uniform(spread, (), minval=-1.0, maxval=1.0)

  return jax.vmap(one)(keys)


def _rectangle(grid: tuple[int, int], top, left, h, w) -> jax.Array:
  rows = jnp.arange(grid[0])[:, None]
  cols = jnp.arange(grid[1])[None, :]
  return (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)


def block_mask(key: jax.Array, grid: tuple[int, int], ratio: jax.Array, min_aspect: float = 0.3,
               min_block: int | None = None, attempts: int = 10) -> jax.Array:
  """One image's blockwise mask [gh * gw] (row-major, 1 masked), the official loop: while fewer than
  ``ratio * gh * gw`` patches are masked, draw a rectangle of area uniform(min_block, patches still to mask) and
  log-uniform aspect in (min_aspect, 1 / min_aspect) at a uniform position; keep it if it fits inside the grid
  and adds between 1 and the patches still to mask; stop after ``attempts`` draws in a row added nothing.

  ``min_block``: iBOT's (min(gh, gw) // 3) ** 2 by default (BEiT and DINOv2 use 4).
  """
  return block_mask_of_count(key, grid, ratio * grid[0] * grid[1], min_aspect, min_block, attempts)


def block_mask_of_count(key: jax.Array, grid: tuple[int, int], target: jax.Array, min_aspect: float = 0.3,
                        min_block: int | None = None, attempts: int = 10) -> jax.Array:
  """``block_mask`` aiming at ``target`` patches (a count, DINOv2's ``MaskingGenerator(num_masking_patches)``,
  or a float share of the grid times its size)."""
  gh, gw = grid
  low = float((min(gh, gw) // 3) ** 2 if min_block is None else min_block)
  high = target
  log_aspect = (math.log(min_aspect), -math.log(min_aspect))

  def draw(state):
    mask, count, fails, key = state
    key, k_area, k_aspect, k_top, k_left = jax.random.split(key, 5)
    remaining = high - count
    area = low + (remaining - low) * jax.random.uniform(k_area)      # Python's uniform(a, b) for a > b too
    aspect = jnp.exp(jax.random.uniform(k_aspect, minval=log_aspect[0], maxval=log_aspect[1]))
    h = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
    w = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
    top = jax.random.randint(k_top, (), 0, jnp.maximum(gh - h + 1, 1))
    left = jax.random.randint(k_left, (), 0, jnp.maximum(gw - w + 1, 1))
    rect = _rectangle(grid, top, left, h, w)
    added = jnp.sum(rect & ~mask)
    accept = (h < gh) & (w < gw) & (added > 0) & (added <= remaining)
    return (jnp.where(accept, mask | rect, mask), count + jnp.where(accept, added, 0),
            jnp.where(accept, 0, fails + 1), key)

  def unfinished(state):
    _, count, fails, _ = state
    return (count < high) & (fails < attempts)

  init = (jnp.zeros(grid, bool), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), key)
  mask, *_ = jax.lax.while_loop(unfinished, draw, init)
  return mask.reshape(-1).astype(jnp.float32)


def stratified_mask_counts(key: jax.Array, total: int, num_patches: int, probability: float,
                           ratio_range: tuple[float, float]) -> jax.Array:
  """int32 [total]: how many patches DINOv2's collate masks in each of ``total`` images drawn together
  (``collate_data_and_cast``): ``int(total * probability)`` images are masked, the i-th of them
  ``int(num_patches * uniform(r_i, r_{i+1}))`` patches with ``r = linspace(*ratio_range, masked + 1)`` (their
  shares spread evenly over the range), the others none, in a random order."""
  masked = int(total * probability)
  edges = np.linspace(*ratio_range, masked + 1).astype(np.float32)
  k_share, k_order = jax.random.split(key)
  shares = jax.random.uniform(k_share, (masked,), minval=edges[:-1], maxval=edges[1:])
  counts = jnp.floor(num_patches * shares).astype(jnp.int32)
  counts = jnp.concatenate([counts, jnp.zeros((total - masked,), jnp.int32)])
  return jax.random.permutation(k_order, counts)


def most_block_masked(grid: tuple[int, int], ratios: Sequence[float], ratio_vars: Sequence[float]) -> int:
  """The most patches ``block_mask`` can mask at any share ``prediction_ratios`` draws: it never adds more than
  the patches still to mask, so the count stays at or below ``ratio * gh * gw`` (the margin covers float32
  shares that round a hair above ``r + v``)."""
  return min(grid[0] * grid[1], int(math.floor(max(r + v for r, v in zip(ratios, ratio_vars)) * grid[0] * grid[1]
                                               + 1e-3)))


def masked_first(mask: jax.Array, count: int) -> jax.Array:
  """[N, L] masks (1 masked) -> int32 [N, count] patch indices: each row's masked patches in order, then its
  unmasked ones to fill the row. With ``count`` at least the most any row masks, every masked patch is there."""
  return jnp.argsort(-mask, axis=1, stable=True)[:, :count].astype(jnp.int32)


def at_tokens(x: jax.Array, ids: jax.Array) -> jax.Array:
  """[N, L, ...] per-token values, int32 [N, S] token indices -> [N, S, ...] the values at those tokens."""
  return jnp.take_along_axis(x, ids.reshape(ids.shape + (1,) * (x.ndim - 2)), axis=1)


def block_masks(keys: jax.Array, grid: tuple[int, int], ratios: jax.Array, min_aspect: float = 0.3,
                min_block: int | None = None) -> jax.Array:
  """[N] keys and [N] shares -> [N, gh * gw] blockwise masks (``block_mask`` per example), float32, 1 masked."""
  return jax.vmap(lambda k, r: block_mask(k, grid, r, min_aspect, min_block))(keys, ratios)
