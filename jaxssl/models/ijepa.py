"""I-JEPA's predictor (Assran et al. 2023, "Self-Supervised Learning from Images with a Joint-Embedding
Predictive Architecture", arXiv:2301.08243; official ``src/models/vision_transformer.py``,
``VisionTransformerPredictor``): a narrow ViT that takes the context encoder's tokens and, for one target block
at a time, a learned mask token at each of the block's patches (fixed 2-D sine-cosine positions for both), and
predicts the target encoder's tokens there."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl.models.vit import ViT, block_class, dense_init, on_tokens, sincos_pos_embed_2d
from jaxssl.ops.multiblock import MultiBlock


class Predictor(nn.Module):
  """(context tokens [N, Kc, D], context ids [N, Kc], target ids [N, T, Kt], grid) -> predictions [N, T, Kt, D].

  With ``context_count`` [N] and ``target_count`` (a scalar) only the first entries of each context and target
  are real (``jaxssl.ops.multiblock.MultiBlock``); no token attends to the padding, whose predictions are left to
  the loss to ignore.

  Attributes:
    out_dim: the encoder's width D (the predictions' width).
    dim, depth, num_heads: the predictor's width, blocks and heads (ViT-H/14: 384, 12, 16).
    weight_init: the linear layers' initialisation, as the encoder's (``dino``: truncated normal 0.02, the
      official I-JEPA one; ``mae``: xavier-uniform). The mask token is truncated normal 0.02 either way.
    gather_axis: as the encoder's (``ViT.gather_axis``): an FSDP step's blocks gather their own parameters.
  """
  out_dim: int
  dim: int = 384
  depth: int = 12
  num_heads: int = 12
  mlp_ratio: float = 4.0
  weight_init: str = "dino"
  dtype: Any = jnp.float32
  gather_axis: str | None = None

  @nn.compact
  def __call__(self, context: jax.Array, context_ids: jax.Array, target_ids: jax.Array,
               grid: tuple[int, int], context_count: jax.Array | None = None,
               target_count: jax.Array | None = None) -> jax.Array:
    n, k_context, _ = context.shape
    _, num_targets, k_target = target_ids.shape
    init = dense_init(self.weight_init)
    pos = jnp.asarray(sincos_pos_embed_2d(self.dim, grid), self.dtype)               # [L, dim]
    x = on_tokens(nn.Dense(self.dim, dtype=self.dtype, kernel_init=init, name="predictor_embed"), context)
    x = x + pos[context_ids]
    # One sequence per target block: the context, then the block's mask tokens (official: repeat the context).
    x = jnp.repeat(x[:, None], num_targets, axis=1).reshape(n * num_targets, k_context, self.dim)
    mask_token = self.param("mask_token", nn.initializers.truncated_normal(0.02), (1, 1, self.dim))
    queries = mask_token.astype(self.dtype) + pos[target_ids.reshape(n * num_targets, k_target)]
    x = jnp.concatenate([x, queries], axis=1)
    token_mask = None
    if context_count is not None or target_count is not None:
      real_context = jnp.arange(k_context) < (k_context if context_count is None else context_count)[..., None]
      real_targets = jnp.arange(k_target) < (k_target if target_count is None else target_count)
      token_mask = jnp.concatenate([jnp.broadcast_to(real_context, (n, k_context)),
                                    jnp.broadcast_to(real_targets, (n, k_target))], axis=1)
      token_mask = jnp.repeat(token_mask, num_targets, axis=0)                  # [N * T, Kc + Kt]
    block = block_class(False, self.dim, self.mlp_ratio, qkv_bias=True, gather_axis=self.gather_axis)
    for i in range(self.depth):
      x = block(self.num_heads, self.mlp_ratio, qkv_bias=True, weight_init=self.weight_init, dtype=self.dtype,
                name=f"predictor_block_{i}")(x, None, None, token_mask)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="predictor_norm")(x[:, k_context:])
    x = on_tokens(nn.Dense(self.out_dim, dtype=self.dtype, kernel_init=init, name="predictor_proj"), x)
    return x.reshape(n, num_targets, k_target, self.out_dim).astype(jnp.float32)


class IJEPANetwork(nn.Module):
  """The context encoder and the predictor. ``__call__(images, masks)`` -> predictions [N, T, Kt, D] of the
  target tokens (``masks``: a ``jaxssl.ops.multiblock.MultiBlock``); the target encoder is the EMA copy of
  ``encoder`` (``target_tokens``)."""
  encoder: ViT
  predictor: Predictor

  @nn.compact
  def __call__(self, images: jax.Array, masks: MultiBlock | None = None, drop_keys: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    p = self.encoder.patch_size
    grid = (images.shape[1] // p, images.shape[2] // p)
    if masks is None:                        # initialisation: every patch in the context, one 1-patch target
      every = jnp.broadcast_to(jnp.arange(grid[0] * grid[1], dtype=jnp.int32), (images.shape[0], grid[0] * grid[1]))
      tokens = self.encoder.tokens(images, keep_ids=every)
      return self.predictor(tokens.patches, every, every[:, None, :1], grid)
    tokens = self.encoder.tokens(images, keep_ids=masks.context, drop_keys=drop_keys if train else None,
                                 keep_count=masks.context_count)
    return self.predictor(tokens.patches, masks.context, masks.targets, grid, masks.context_count,
                          masks.target_count)

  def embed(self, x: jax.Array) -> jax.Array:
    """The encoder's features of full images (``model.pool``; I-JEPA evaluates the mean patch token)."""
    return self.encoder(x, train=False)


def target_tokens(encoder: ViT, params: dict, images: jax.Array, target_ids: jax.Array) -> jax.Array:
  """The target encoder's tokens at the target blocks, layer-normalised without scale or shift (official
  ``F.layer_norm``) and without gradient: [N, T, Kt, D] (padding entries: the tokens at whatever index they
  hold, for the loss to ignore)."""
  tokens = encoder.apply({"params": jax.lax.stop_gradient(params)}, images, method=ViT.tokens).patches
  mean = tokens.mean(-1, keepdims=True)
  tokens = (tokens - mean) * jax.lax.rsqrt(tokens.var(-1, keepdims=True) + 1e-5)
  n, num_targets, k_target = target_ids.shape
  picked = jnp.take_along_axis(tokens, target_ids.reshape(n, num_targets * k_target)[..., None], axis=1)
  return jax.lax.stop_gradient(picked.reshape(n, num_targets, k_target, -1))
