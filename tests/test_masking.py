"""MAE's random masking: the official semantics, and masks that depend on each example's key only."""

import jax
import numpy as np
import pytest

from jaxssl import masking


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
