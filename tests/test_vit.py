"""The ViT's tokens and masks: patchify, sine-cosine positions, attention, running on kept patches, drop path,
pooling, remat, MAE's initialisation and the standard sizes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.models import ViTBase, ViTHuge, ViTLarge, ViTMicro
from jaxssl.models import vit as vit_lib

X = jnp.asarray(np.random.default_rng(0).normal(size=(3, 16, 16, 1)), jnp.float32)


def _micro(**kwargs):
  return ViTMicro(patch_size=4, base_grid=4, **kwargs)


def test_patchify_orders_each_patch_row_column_channel_and_unpatchify_inverts_it():
  images = np.arange(2 * 4 * 6 * 3, dtype=np.float32).reshape(2, 4, 6, 3)
  patches = np.asarray(vit_lib.patchify(jnp.asarray(images), 2))
  assert patches.shape == (2, 6, 12)                          # a 2x3 grid of 2x2x3 patches
  # Patch 4 is grid row 1, column 1: pixels (2..3, 2..3), vector (row in patch, column in patch, channel).
  expected = np.stack([images[1, 2 + r, 2 + c, ch] for r in range(2) for c in range(2) for ch in range(3)])
  np.testing.assert_array_equal(patches[1, 4], expected)
  np.testing.assert_array_equal(vit_lib.unpatchify(jnp.asarray(patches), 2, (2, 3), 3), images)
  with pytest.raises(ValueError, match="not a multiple of the patch size 4"):
    vit_lib.patchify(jnp.zeros((1, 6, 8, 1)), 4)


def _official_sincos(dim, grid_size):
  """The official MAE util/pos_embed.get_2d_sincos_pos_embed (cls_token=True), step by step as published:
  meshgrid(w, h) with w first, the first half of the width from grid[0], float64 frequencies."""
  grid_h = np.arange(grid_size, dtype=np.float32)
  grid_w = np.arange(grid_size, dtype=np.float32)
  grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape([2, 1, grid_size, grid_size])

  def one_d(d, pos):
    omega = np.arange(d // 2, dtype=np.float64)
    omega /= d / 2.0
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

  emb = np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)
  return np.concatenate([np.zeros([1, dim]), emb], axis=0)


@pytest.mark.parametrize("dim,grid", [(64, 4), (768, 14), (1280, 16)])
def test_sincos_positions_equal_the_official_ones(dim, grid):
  ours = vit_lib.sincos_pos_embed_2d(dim, (grid, grid), cls_token=True)
  np.testing.assert_allclose(ours, _official_sincos(dim, grid), atol=1e-6)
  with pytest.raises(ValueError, match="divisible by 4"):
    vit_lib.sincos_pos_embed_2d(62, (2, 2))


def test_attention_equals_softmax_attention_written_out():
  module = vit_lib.Attention(num_heads=2)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(2, 5, 8)), jnp.float32)
  params = module.init(jax.random.key(0), x)["params"]
  qkv = np.asarray(x) @ np.asarray(params["qkv"]["kernel"]) + np.asarray(params["qkv"]["bias"])
  q, k, v = (qkv[..., i * 8:(i + 1) * 8].reshape(2, 5, 2, 4).transpose(0, 2, 1, 3) for i in range(3))
  logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(4)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  heads = (weights @ v).transpose(0, 2, 1, 3).reshape(2, 5, 8)
  expected = heads @ np.asarray(params["proj"]["kernel"]) + np.asarray(params["proj"]["bias"])
  np.testing.assert_allclose(module.apply({"params": params}, x), expected, atol=1e-5)


def test_tokens_of_kept_patches_depend_on_those_patches_only_and_follow_their_order():
  for pos in ("learned", "sincos"):
    vit = _micro(pos_embed=pos)
    variables = vit.init(jax.random.key(0), X)
    full = vit.apply(variables, X, method=vit.tokens)
    assert full.cls.shape == (3, 64) and full.patches.shape == (3, 16, 64) and full.grid == (4, 4)
    # All patches, permuted: the same tokens, permuted (attention is permutation-equivariant once the positions
    # are added).
    perm = jnp.asarray(np.stack([np.random.default_rng(i).permutation(16) for i in range(3)]), jnp.int32)
    permuted = vit.apply(variables, X, perm, method=vit.tokens)
    np.testing.assert_allclose(permuted.patches, jnp.take_along_axis(full.patches, perm[..., None], 1), atol=1e-5)
    np.testing.assert_allclose(permuted.cls, full.cls, atol=1e-5)
    # Four kept patches: changing the pixels of a removed patch changes nothing.
    keep = perm[:, :4]
    some = vit.apply(variables, X, keep, method=vit.tokens)
    assert some.patches.shape == (3, 4, 64)
    removed = int(perm[0, 5])
    row, col = divmod(removed, 4)
    changed = X.at[0, 4 * row:4 * row + 4, 4 * col:4 * col + 4].add(3.0)
    np.testing.assert_allclose(vit.apply(variables, changed, keep, method=vit.tokens).patches, some.patches,
                               atol=1e-6)


def test_pooling_cls_or_mean_and_learned_positions_interpolate_to_other_grids():
  vit = _micro()
  variables = vit.init(jax.random.key(0), X)
  tokens = vit.apply(variables, X, method=vit.tokens)
  np.testing.assert_allclose(vit.apply(variables, X), tokens.cls, atol=1e-6)
  mean = _micro(pool="mean")
  np.testing.assert_allclose(mean.apply(variables, X), tokens.patches.mean(1), atol=1e-6)
  small = vit.apply(variables, X[:, :8, :8])                  # a local crop: 2x2 patches, resized positions
  assert small.shape == (3, 64) and np.all(np.isfinite(small))
  assert "pos_embed" not in _micro(pos_embed="sincos").init(jax.random.key(0), X)["params"]   # fixed


def test_global_pool_is_maes_mean_of_the_last_blocks_patches_then_fc_norm():
  """models_vit.py with global_pool=True: x[:, 1:].mean(1) of the last block's output, then fc_norm; no final
  norm. Written out with the last block's output and fc_norm's parameters (made non-trivial)."""
  vit = _micro(pool="global")
  params = vit.init(jax.random.key(0), X)["params"]
  assert "fc_norm" in params and "norm" not in params
  rng = np.random.default_rng(1)
  params["fc_norm"] = {"scale": jnp.asarray(rng.normal(size=64), jnp.float32),
                       "bias": jnp.asarray(rng.normal(size=64), jnp.float32)}
  features, state = vit.apply({"params": params}, X, capture_intermediates=True)
  last = np.asarray(state["intermediates"]["block_3"]["__call__"][0], np.float64)     # [N, 1 + L, D]
  mean = last[:, 1:].mean(axis=1)
  normed = (mean - mean.mean(-1, keepdims=True)) / np.sqrt(mean.var(-1, keepdims=True) + 1e-6)
  expected = normed * np.asarray(params["fc_norm"]["scale"]) + np.asarray(params["fc_norm"]["bias"])
  np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-5)
  tokens = vit.apply({"params": params}, X, method=vit.tokens)
  np.testing.assert_allclose(tokens.patches, last[:, 1:], rtol=1e-6, atol=1e-6)   # not normed
  # Not the mean of normed tokens (the "mean" pool) under the same blocks.
  normed_tokens = _micro(pool="mean").apply({"params": {**params, "norm": params["fc_norm"]}}, X)
  assert not np.allclose(features, normed_tokens, atol=1e-2)


def test_drop_path_draws_per_example_from_its_keys_and_is_off_outside_training():
  vit = _micro(drop_path_rate=0.5)
  variables = vit.init(jax.random.key(0), X)
  keys = jax.random.split(jax.random.key(3), 3)
  a = vit.apply(variables, X, train=True, drop_keys=keys)
  np.testing.assert_array_equal(a, vit.apply(variables, X, train=True, drop_keys=keys))
  assert not np.allclose(a, vit.apply(variables, X, train=True, drop_keys=jax.random.split(jax.random.key(4), 3)))
  # Each example's draw is its own: the second example alone gives the same output as in the batch.
  np.testing.assert_allclose(vit.apply(variables, X[1:2], train=True, drop_keys=keys[1:2]), a[1:2], atol=1e-5)
  plain = vit.apply(variables, X)                              # evaluation: no drop path
  np.testing.assert_allclose(plain, _micro().apply(variables, X), atol=1e-6)
  with pytest.raises(ValueError, match="needs per-example drop_keys"):
    vit.apply(variables, X, train=True)
  np.testing.assert_array_equal(vit_lib.drop_path(X, None, 0.5), X)


def test_remat_gives_the_same_features_and_gradients():
  plain, remat = _micro(), _micro(remat=True)
  variables = plain.init(jax.random.key(0), X)
  loss = lambda model: jax.value_and_grad(lambda p: jnp.sum(model.apply({"params": p}, X) ** 2))(
      variables["params"])
  (v1, g1), (v2, g2) = loss(plain), loss(remat)
  np.testing.assert_allclose(v1, v2, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_mae_initialisation_is_xavier_uniform_with_normal_tokens():
  vit = functools.partial(ViTBase, patch_size=16, base_grid=14, pos_embed="sincos", weight_init="mae")()
  shapes = jax.eval_shape(lambda: vit.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))))["params"]
  assert shapes["patch_embed"]["kernel"].shape == (16, 16, 3, 768)
  params = vit_lib.ViT(patch_size=16, dim=768, depth=1, num_heads=12, base_grid=2, pos_embed="sincos",
                       weight_init="mae").init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"]
  patch = np.asarray(params["patch_embed"]["kernel"])          # fans 16 * 16 * 3 in, 768 out, as the official
  bound = np.sqrt(6 / (16 * 16 * 3 + 768))                     # xavier_uniform_ on the flattened projection
  assert np.abs(patch).max() <= bound * (1 + 1e-6) and np.abs(patch).max() > 0.95 * bound
  fc1 = np.asarray(params["block_0"]["mlp"]["fc1"]["kernel"])
  assert np.abs(fc1).max() <= np.sqrt(6 / (768 + 3072)) * (1 + 1e-6) and np.all(params["block_0"]["mlp"]["fc1"]["bias"] == 0)
  assert 0.015 < float(np.std(params["cls_token"])) < 0.025


@pytest.mark.parametrize("module,patch,expected_millions", [(ViTBase, 16, 85.8), (ViTLarge, 16, 303.3),
                                                            (ViTHuge, 14, 630.8)])
def test_standard_sizes_have_the_papers_parameter_counts(module, patch, expected_millions):
  vit = module(patch_size=patch, base_grid=224 // patch)
  shapes = jax.eval_shape(lambda: vit.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
  assert abs(count / 1e6 - expected_millions) / expected_millions < 0.005, count


def test_a_checkpoints_blocks_convert_to_the_other_layout_on_the_host():
  """to_block_layout (fine-tuning a run pretrained with or without model.scan_layers): stacked <-> one by one,
  leaf for leaf, numpy in numpy out; a tree already in the layout, or not a ViT, comes back as it is."""
  from jaxssl.models.vit import to_block_layout

  plain, scanned = _micro(), _micro(scan_layers=True)
  params = jax.tree.map(np.asarray, plain.init(jax.random.key(0), X)["params"])
  shapes = jax.eval_shape(lambda: scanned.init(jax.random.key(0), X))["params"]
  stacked, changed = to_block_layout(params, like=shapes)
  assert changed and jax.tree.map(lambda a: a.shape, stacked) == jax.tree.map(lambda a: a.shape, shapes)
  assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(stacked))
  np.testing.assert_array_equal(stacked["blocks"]["block"]["mlp"]["fc2"]["kernel"][3],
                                params["block_3"]["mlp"]["fc2"]["kernel"])
  back, changed = to_block_layout(stacked, like=params)
  assert changed and jax.tree.structure(back) == jax.tree.structure(params)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
    np.testing.assert_array_equal(a, b)
  for tree, like in ((params, params), (stacked, shapes), ({"stage_0": {"conv": {"kernel": np.zeros(3)}}}, shapes)):
    out, changed = to_block_layout(tree, like)
    assert out is tree and not changed


@pytest.mark.parametrize("remat", [False, True])
def test_scan_layers_is_the_unrolled_vit_on_stacked_parameters(remat):
  """model.scan_layers: the same tokens and gradients as block_0..block_3 one by one, with drop path rising over
  the blocks (the per-block rates and keys travel through the scan); the parameters convert both ways."""
  from jaxssl.models.vit import stack_blocks, unstack_blocks

  plain, scanned = _micro(drop_path_rate=0.3), _micro(drop_path_rate=0.3, scan_layers=True, remat=remat)
  params = plain.init(jax.random.key(0), X)["params"]
  stacked = stack_blocks(params, depth=4)
  shapes = jax.eval_shape(lambda: scanned.init(jax.random.key(0), X))["params"]
  assert jax.tree.map(lambda a: a.shape, stacked) == jax.tree.map(lambda a: a.shape, shapes)
  assert stacked["blocks"]["block"]["attn"]["qkv"]["kernel"].shape == (4, 64, 192)
  keys = jax.random.split(jax.random.key(1), X.shape[0])

  def loss(model, p):
    out = model.apply({"params": p}, X, drop_keys=keys, method=model.tokens)
    return jnp.sum(out.patches ** 2) + jnp.sum(out.cls)

  v1, g1 = jax.value_and_grad(lambda p: loss(plain, p))(params)
  v2, g2 = jax.value_and_grad(lambda p: loss(scanned, p))(stacked)
  np.testing.assert_allclose(v2, v1, rtol=1e-5)
  # float32 rounding of differently fused sums: up to ~1.5e-3 of a leaf's largest gradient; a wrong rate, key
  # or block order differs by its whole size.
  for a, b in zip(jax.tree.leaves(unstack_blocks(g2)), jax.tree.leaves(g1)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=3e-3 * float(jnp.max(jnp.abs(b))))
  assert jax.tree.structure(unstack_blocks(stacked)) == jax.tree.structure(params)
  # Drop path is on: without the keys the loss differs.
  assert abs(float(jnp.sum(scanned.apply({"params": stacked}, X, method=scanned.tokens).patches ** 2)
                   + jnp.sum(scanned.apply({"params": stacked}, X, method=scanned.tokens).cls)) - float(v1)) > 1e-3
