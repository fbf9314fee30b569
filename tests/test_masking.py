"""MAE's random masking: the official semantics, and masks that depend on each example's key only."""

import jax
import numpy as np
import pytest

from jaxssl.ops import masking


def _official_random_masking(noise, mask_ratio):
  """models_mae.random_masking's index arithmetic in NumPy (argsort of the noise, keep the first, restore)."""
  n, length = noise.shape
  keep = int(length * (1 - mask_ratio))
  ids_shuffle = np.argsort(noise, axis=1, kind="stable")
  ids_restore = np.argsort(ids_shuffle, axis=1, kind="stable")
  mask = np.ones([n, length])
  mask[:, :keep] = 0
  return ids_shuffle[:, :keep], np.take_along_axis(mask, ids_restore, axis=1), ids_restore


@pytest.mark.parametrize("length,ratio", [(49, 0.75), (196, 0.75), (16, 0.5), (10, 0.0)])
def test_random_masking_equals_the_official_code(length, ratio):
  noise = np.random.default_rng(length).uniform(size=(5, length)).astype(np.float32)
  out = masking.random_masking(noise, ratio)
  ids_keep, mask, ids_restore = _official_random_masking(noise, ratio)
  np.testing.assert_array_equal(out.ids_keep, ids_keep)
  np.testing.assert_array_equal(out.mask, mask)
  np.testing.assert_array_equal(out.ids_restore, ids_restore)
  keep = masking.num_kept(length, ratio)
  assert out.ids_keep.shape == (5, keep) and np.all(np.asarray(out.mask).sum(1) == length - keep)
  # The kept patches are exactly those the mask marks 0, and ids_restore inverts the shuffle.
  for i in range(5):
    assert set(np.asarray(out.ids_keep[i])) == set(np.flatnonzero(np.asarray(out.mask[i]) == 0))
  shuffle = np.argsort(noise, axis=1, kind="stable")
  np.testing.assert_array_equal(np.take_along_axis(shuffle, np.asarray(out.ids_restore), 1),
                                np.broadcast_to(np.arange(length), (5, length)))


def test_masks_depend_on_each_examples_key_only():
  keys = jax.random.split(jax.random.key(0), 8)
  whole = masking.random_masking(masking.uniform_noise(keys, 49), 0.75)
  # The batch split in two (as over two devices) gives the same masks.
  halves = [masking.random_masking(masking.uniform_noise(keys[i:i + 4], 49), 0.75) for i in (0, 4)]
  np.testing.assert_array_equal(np.concatenate([h.mask for h in halves]), whole.mask)
  np.testing.assert_array_equal(np.concatenate([h.ids_keep for h in halves]), whole.ids_keep)
  assert len({tuple(np.asarray(row)) for row in whole.ids_keep}) == 8     # examples differ


# ----------------------------------------------------------------------------------------------------------------
# iBOT's blockwise masks.


def _official_block_mask(rng, grid, ratio, min_aspect=0.3):
  """iBOT's ImageFolderMask block loop (Python's random), as a reference for the distribution."""
  import math
  h_grid, w_grid = grid
  mask = np.zeros(grid, bool)
  high, count = ratio * h_grid * w_grid, 0
  log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
  while count < high:
    remaining, delta = high - count, 0
    for _ in range(10):
      low = (min(grid) // 3) ** 2
      area = rng.uniform(low, remaining)
      aspect = math.exp(rng.uniform(*log_aspect))
      h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
      if w < w_grid and h < h_grid:
        top, left = rng.randint(0, h_grid - h), rng.randint(0, w_grid - w)
        new = h * w - mask[top:top + h, left:left + w].sum()
        if 0 < new <= remaining:
          mask[top:top + h, left:left + w] = True
          delta += new
      if delta > 0:
        break
    if delta == 0:
      break
    count += delta
  return mask.reshape(-1)


@pytest.mark.parametrize("grid,ratio", [((14, 14), 0.3), ((14, 14), 0.5), ((7, 7), 0.3), ((12, 8), 0.4)])
def test_block_masks_match_the_official_sampler_in_distribution(grid, ratio):
  import random
  n = 400
  keys = jax.random.split(jax.random.key(1), n)
  ours = np.asarray(masking.block_masks(keys, grid, np.full((n,), ratio, np.float32)))
  rng = random.Random(0)
  theirs = np.stack([_official_block_mask(rng, grid, ratio) for _ in range(n)])
  length = grid[0] * grid[1]
  # Never more than the drawn share; on average the same share, and the same spread over images and patches.
  assert ours.sum(1).max() <= ratio * length + 1e-6
  assert abs(ours.mean() - theirs.mean()) < 0.015, (ours.mean(), theirs.mean())
  assert abs(ours.sum(1).std() - theirs.sum(1).std()) < 1.0
  np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.12)


def test_block_masks_are_blocks_not_scattered_patches():
  n, grid = 200, (14, 14)
  masks = np.asarray(masking.block_masks(jax.random.split(jax.random.key(2), n), grid, np.full((n,), 0.4)))
  grids = masks.reshape(n, *grid).astype(bool)
  # Most masked patches have a masked 4-neighbour (a random 40% mask: about 1 - 0.6^4 = 87%, ours near 100%).
  padded = np.pad(grids, ((0, 0), (1, 1), (1, 1)))
  neighbour = padded[:, :-2, 1:-1] | padded[:, 2:, 1:-1] | padded[:, 1:-1, :-2] | padded[:, 1:-1, 2:]
  assert (neighbour & grids).sum() / grids.sum() > 0.97


def test_prediction_ratios_follow_ibots_choice_and_spread():
  keys = jax.random.split(jax.random.key(3), 4000)
  r = np.asarray(masking.prediction_ratios(keys, (0.0, 0.3), (0.0, 0.2)))
  unmasked = r == 0.0
  assert 0.45 < unmasked.mean() < 0.55
  assert r[~unmasked].min() >= 0.1 - 1e-6 and r[~unmasked].max() <= 0.5 + 1e-6
  assert abs(r[~unmasked].mean() - 0.3) < 0.01
  assert np.all(np.asarray(masking.prediction_ratios(keys[:10], (0.3,), (0.0,))) == np.float32(0.3))


def test_block_masks_depend_on_each_examples_key_only():
  keys = jax.random.split(jax.random.key(4), 8)
  ratios = masking.prediction_ratios(keys, (0.0, 0.3), (0.0, 0.2))
  whole = masking.block_masks(keys, (7, 7), ratios)
  halves = [masking.block_masks(keys[i:i + 4], (7, 7), ratios[i:i + 4]) for i in (0, 4)]
  np.testing.assert_array_equal(np.concatenate(halves), whole)


@pytest.mark.parametrize("grid,ratios,spreads", [((7, 7), (0.0, 0.3), (0.0, 0.2)), ((4, 4), (0.3,), (0.2,)),
                                                  ((14, 14), (0.0, 0.3), (0.0, 0.2))])
def test_the_scored_tokens_hold_every_masked_patch(grid, ratios, spreads):
  """iBOT's student scores masking.masked_first(mask, most_block_masked(...)) tokens: the bound holds on many
  draws (shares up to r + v), and the picked tokens are each row's masked patches first."""
  keys = jax.random.split(jax.random.key(6), 2048)
  masks = masking.block_masks(keys, grid, masking.prediction_ratios(keys, ratios, spreads))
  most = masking.most_block_masked(grid, ratios, spreads)
  assert most == int(max(r + v for r, v in zip(ratios, spreads)) * grid[0] * grid[1])
  counts = np.asarray(masks.sum(axis=1))
  assert counts.max() <= most and counts.max() >= most - 2             # the bound is reached, nearly
  picks = np.asarray(masking.masked_first(masks, most))
  assert picks.shape == (2048, most)
  picked = np.take_along_axis(np.asarray(masks), picks, axis=1)
  np.testing.assert_array_equal(picked.sum(axis=1), counts)             # no masked patch left out
  assert np.all(np.diff(picked, axis=1) <= 0)                           # masked ones first
  assert all(len(set(row)) == most for row in picks[:64])                # no token twice
