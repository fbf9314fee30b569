"""I-JEPA's multi-block masks (Assran et al. 2023, arXiv:2301.08243; official ``src/masks/multiblock.py``,
``MaskCollator``) as pure functions of a key of the step and a key per example.

As the official collator, per batch: one target block size (scale and aspect ratio from one uniform draw) and one
square context block size, both from the step's key (the official seeds its generator with the iteration
count, the same on every GPU); per example: ``num_targets`` target blocks at uniform positions, then a context
block at uniform positions until it keeps more than ``min_keep`` patches outside the targets, ignoring the last
target after each 20 failures (the official relaxation). Every target keeps its whole block.

Shapes stay static under jit through padding: ``MultiBlock.targets`` has room for the largest block any step can
draw and ``target_count`` says how many entries are real; ``context`` has ``context_keep`` entries of which each
example's ``context_count`` are real. The official collator cuts every context of a GPU's batch (128 images) to
that batch's fewest; here each context keeps its first patches in row-major order up to ``context_keep`` (by
default the median of the official batches' cut, ``default_context_keep``), fewer only where it has fewer. That is
the one difference from the official masks: the official cut varies from batch to batch (42-96 patches on a 16 x
16 grid, median 67), this one is the same for every step. The model skips the padding (an attention mask) and
the loss averages over the real target entries only.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

_TIMEOUT = 20                 # the official collator's failed positions before it drops one target's constraint
OFFICIAL_GPU_BATCH = 128      # the official per-GPU batch (ViT-H/14: 16 GPUs x 128), whose fewest cut the contexts


class MultiBlock(NamedTuple):
  """context int32 [N, Kc]: each example's context patches (row-major indices, never in a target), the first
  ``context_count`` [N] real and the rest padding; targets int32 [N, T, Kt]: each target block's patches in
  row-major order, the first ``target_count`` (a scalar: the step's block size) real and the rest padding."""
  context: jax.Array
  context_count: jax.Array
  targets: jax.Array
  target_count: jax.Array

  def context_valid(self) -> jax.Array:
    """bool [N, Kc]: the real context entries."""
    return jnp.arange(self.context.shape[1]) < self.context_count[:, None]

  def target_valid(self) -> jax.Array:
    """bool [Kt]: the real entries of every target."""
    return jnp.arange(self.targets.shape[2]) < self.target_count


def block_size(u, grid: tuple[int, int], scale: tuple[float, float], aspect: tuple[float, float]):
  """The official ``_sample_block_size``: one uniform u sets both the scale and the aspect ratio; a block of
  ``int(L * scale)`` patches, at most one row and one column short of the grid (Python's ``round`` and NumPy's
  and JAX's round halves to even alike). Works on NumPy arrays and JAX scalars."""
  gh, gw = grid
  xp = jnp if isinstance(u, jax.Array) else np
  keep = xp.floor(gh * gw * (scale[0] + u * (scale[1] - scale[0])))
  ratio = aspect[0] + u * (aspect[1] - aspect[0])
  h = xp.minimum(xp.round(xp.sqrt(keep * ratio)), gh - 1)
  w = xp.minimum(xp.round(xp.sqrt(keep / ratio)), gw - 1)
  return h, w


def _areas(grid, scale, aspect) -> np.ndarray:
  h, w = block_size(np.linspace(0.0, 1.0, 10001), grid, scale, aspect)
  return h * w


def smallest_block(grid: tuple[int, int], scale: tuple[float, float], aspect: tuple[float, float]) -> int:
  """The fewest patches a block of this scale and aspect range can have (on a fine grid of u)."""
  return int(np.min(_areas(grid, scale, aspect)))


def largest_block(grid: tuple[int, int], scale: tuple[float, float], aspect: tuple[float, float]) -> int:
  """The most patches a block of this scale and aspect range can have: the room every target keeps."""
  return int(np.max(_areas(grid, scale, aspect)))


def _rectangle(grid: tuple[int, int], top, left, h, w) -> jax.Array:
  rows = jnp.arange(grid[0])[:, None]
  cols = jnp.arange(grid[1])[None, :]
  return (rows >= top) & (rows < top + h) & (cols >= left) & (cols < left + w)


def _position(key, grid, h, w):
  """``torch.randint(0, H - h)`` and ``(0, W - w)``: the high end exclusive."""
  k_top, k_left = jax.random.split(key)
  top = jax.random.randint(k_top, (), 0, (grid[0] - h).astype(jnp.int32))
  left = jax.random.randint(k_left, (), 0, (grid[1] - w).astype(jnp.int32))
  return top, left


def multiblock_masks(step_key: jax.Array, keys: jax.Array, grid: tuple[int, int], num_targets: int = 4,
                     target_scale: tuple[float, float] = (0.15, 0.2), target_aspect: tuple[float, float] = (0.75, 1.5),
                     context_scale: tuple[float, float] = (0.85, 1.0), context_keep: int | None = None,
                     min_keep: int = 10) -> MultiBlock:
  """I-JEPA's masks of one batch.

  Args:
    step_key: the step's key, the same for every example and device: the batch's two block sizes.
    keys: [N] per-example keys: the blocks' positions.
    grid: the patch grid (gh, gw).
    context_keep: the most patches a context keeps (its room); default ``default_context_keep``.
    min_keep: a context keeps more than this many patches (official ``min_keep``: 10 in its configs), and so
      must every target block (``check_sizes``).
  """
  gh, gw = grid
  room_target = largest_block(grid, target_scale, target_aspect)
  room_context = default_context_keep(grid, num_targets, target_scale, target_aspect, context_scale, min_keep) \
      if context_keep is None else context_keep
  check_sizes(grid, target_scale, target_aspect, context_scale, room_context, min_keep)
  k_target_size, k_context_size = jax.random.split(step_key)
  ht, wt = block_size(jax.random.uniform(k_target_size), grid, target_scale, target_aspect)
  hc, wc = block_size(jax.random.uniform(k_context_size), grid, context_scale, (1.0, 1.0))

  def example(key):
    k_targets, k_context = jax.random.split(key)
    positions = jax.vmap(lambda k: _position(k, grid, ht, wt))(jax.random.split(k_targets, num_targets))
    targets = jax.vmap(lambda top, left: _rectangle(grid, top, left, ht, wt))(*positions)    # [T, gh, gw]

    def attempt(state):
      i, dropped, failures, _, _ = state
      block = _rectangle(grid, *_position(jax.random.fold_in(k_context, i), grid, hc, wc), hc, wc)
      # The official constraint: outside each of the first T - dropped targets.
      constrained = jnp.arange(num_targets)[:, None, None] < num_targets - dropped
      context = block & ~jnp.any(targets & constrained, axis=0)
      found = jnp.sum(context) > min_keep
      failures = jnp.where(found, failures, failures + 1)
      relax = failures == _TIMEOUT
      return i + 1, dropped + relax, jnp.where(relax, 0, failures), found, context

    init = (jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.zeros((), bool),
            jnp.zeros(grid, bool))
    *_, context = jax.lax.while_loop(lambda state: ~state[3], attempt, init)
    first = lambda m, k: jnp.nonzero(m.reshape(-1), size=k, fill_value=0)[0].astype(jnp.int32)
    count = jnp.minimum(jnp.sum(context), room_context).astype(jnp.int32)
    return first(context, room_context), count, jax.vmap(lambda t: first(t, room_target))(targets)

  context, count, targets = jax.vmap(example)(keys)
  return MultiBlock(context, count, targets, (ht * wt).astype(jnp.int32))


def check_sizes(grid: tuple[int, int], target_scale, target_aspect, context_scale, context_keep: int,
                min_keep: int) -> None:
  """Raises ValueError where the official collator would never stop drawing (a block of at most ``min_keep``
  patches: it redraws until a block keeps more) or the context's room is empty or larger than any context."""
  smallest_target = smallest_block(grid, target_scale, target_aspect)
  smallest_context = smallest_block(grid, context_scale, (1.0, 1.0))
  largest_context = largest_block(grid, context_scale, (1.0, 1.0))
  if min(smallest_target, smallest_context) <= min_keep:
    raise ValueError(f"min_keep={min_keep} must be below the smallest target block ({smallest_target} patches) "
                     f"and context block ({smallest_context}) of the {grid} patch grid")
  if not 1 <= context_keep <= largest_context:
    raise ValueError(f"context_keep={context_keep} must be between 1 and the largest context block, "
                     f"{largest_context} patches")


@functools.lru_cache(maxsize=64)
def default_context_keep(grid: tuple[int, int], num_targets: int = 4, target_scale: tuple[float, float] = (0.15, 0.2),
                         target_aspect: tuple[float, float] = (0.75, 1.5),
                         context_scale: tuple[float, float] = (0.85, 1.0), min_keep: int = 10) -> int:
  """The median, over batches of the official collator, of the count it cuts a batch's contexts to (the fewest
  patches a context of the batch keeps: ``official_context_cuts``)."""
  cuts = official_context_cuts(grid, num_targets, target_scale, target_aspect, context_scale, min_keep)
  return max(int(np.median(cuts)), 1)


def official_context_cuts(grid: tuple[int, int], num_targets: int, target_scale: tuple[float, float],
                          target_aspect: tuple[float, float], context_scale: tuple[float, float], min_keep: int,
                          batches: int = 128, batch: int = OFFICIAL_GPU_BATCH, seed: int = 0) -> np.ndarray:
  """[batches] the context count of each of ``batches`` official batches of ``batch`` images (NumPy's
  generator for torch's): the block sizes per batch, the targets and the context's positions per image with the
  official relaxation, each batch's fewest context count."""
  gh, gw = grid
  rng = np.random.default_rng(seed)
  u = rng.uniform(size=(batches, 2))
  ht, wt = (x.astype(int)[:, None] for x in block_size(u[:, 0], grid, target_scale, target_aspect))
  hc, wc = (x.astype(int)[:, None] for x in block_size(u[:, 1], grid, context_scale, (1.0, 1.0)))
  shape = (batches, batch, num_targets)
  top, left = rng.integers(0, gh - ht[..., None], shape), rng.integers(0, gw - wt[..., None], shape)
  rows, cols = np.arange(gh)[:, None], np.arange(gw)[None, :]
  inside = ((rows >= top[..., None, None]) & (rows < (top + ht[..., None])[..., None, None]) &
            (cols >= left[..., None, None]) & (cols < (left + wt[..., None])[..., None, None]))   # [B, n, T, gh, gw]
  counts = np.full((batches, batch), -1)
  for dropped in range(num_targets + 1):
    allowed = ~inside[:, :, :num_targets - dropped].any(axis=2)                               # [B, n, gh, gw]
    table = np.zeros((batches, batch, gh + 1, gw + 1), np.int32)
    table[:, :, 1:, 1:] = allowed.cumsum(2).cumsum(3)
    ctop = rng.integers(0, gh - hc[..., None], (batches, batch, _TIMEOUT))
    cleft = rng.integers(0, gw - wc[..., None], (batches, batch, _TIMEOUT))
    b, n = np.arange(batches)[:, None, None], np.arange(batch)[None, :, None]
    bottom, right = ctop + hc[..., None], cleft + wc[..., None]
    kept = (table[b, n, bottom, right] - table[b, n, ctop, right] - table[b, n, bottom, cleft] +
            table[b, n, ctop, cleft])                                                          # [B, n, 20]
    valid = kept > min_keep
    first = np.where(valid.any(-1), kept[b[..., 0], n[..., 0], valid.argmax(-1)], -1)
    counts = np.where((counts < 0) & (first >= 0), first, counts)
    if np.all(counts >= 0):
      break
  return counts.min(axis=1)
