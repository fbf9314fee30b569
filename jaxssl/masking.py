"""Per-example patch masks as pure functions of per-example randomness (so 8 devices give the same masks as 1,
and a resumed run the same as an uninterrupted one). Shapes are static: every example keeps the same number of
patches, so the masked encoder compiles once.

MAE's random masking (He et al. 2022, arXiv:2111.06377, official ``models_mae.random_masking``). iBOT's
blockwise and I-JEPA's multi-block masks will live here too.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


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
