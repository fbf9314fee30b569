"""The masked autoencoder of MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners",
arXiv:2111.06377; official ``models_mae.py``): a ViT encoder on the visible patches only, and a light ViT
decoder that takes the encoded visible tokens plus a learned mask token at every removed position (fixed 2-D
sine-cosine positions) and predicts each patch's pixels."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl.models.vit import ViT, block_class, dense_init, on_tokens, sincos_pos_embed_2d
from jaxssl.ops.masking import Masking


class MaskedAutoencoder(nn.Module):
  """[N, H, W, C] normalised images and a ``Masking`` -> predicted patches [N, L, p*p*C] (every patch, in the
  order of ``jaxssl.models.vit.patchify``; the loss reads the removed ones). With ``train``, the encoder's drop
  path (``model.drop_path_rate``) draws from ``drop_keys`` [N].

  Attributes:
    encoder: the ViT (MAE: fixed sine-cosine positions, MAE's initialisation).
    decoder_dim, decoder_depth, decoder_heads: the decoder's width, blocks and heads (paper: 512, 8, 16).
    mlp_ratio: the decoder blocks' MLP width / decoder_dim.
  """
  encoder: ViT
  decoder_dim: int = 512
  decoder_depth: int = 8
  decoder_heads: int = 16
  mlp_ratio: float = 4.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, masking: Masking | None = None, drop_keys: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    n, h, w, c = images.shape
    p = self.encoder.patch_size
    grid = (h // p, w // p)
    length = grid[0] * grid[1]
    if masking is None:                        # every patch visible (initialisation, or a look at the decoder)
      ids = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), (n, length))
      masking = Masking(ids, jnp.zeros((n, length)), ids)
    tokens = self.encoder.tokens(images, keep_ids=masking.ids_keep, drop_keys=drop_keys if train else None)
    x = jnp.concatenate([tokens.cls[:, None], tokens.patches], axis=1)
    x = on_tokens(nn.Dense(self.decoder_dim, dtype=self.dtype, kernel_init=dense_init("mae"), name="decoder_embed"),
                  x)
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.decoder_dim))
    kept = x.shape[1] - 1
    fill = jnp.broadcast_to(mask_token.astype(x.dtype), (n, length - kept, self.decoder_dim))
    patches = jnp.take_along_axis(jnp.concatenate([x[:, 1:], fill], axis=1), masking.ids_restore[..., None], axis=1)
    x = jnp.concatenate([x[:, :1], patches], axis=1)
    x = x + jnp.asarray(sincos_pos_embed_2d(self.decoder_dim, grid, cls_token=True), x.dtype)[None]
    block = block_class(False, self.decoder_dim, self.mlp_ratio, qkv_bias=True, gather_axis=self.encoder.gather_axis)
    for i in range(self.decoder_depth):
      x = block(self.decoder_heads, self.mlp_ratio, qkv_bias=True, weight_init="mae", dtype=self.dtype,
                name=f"decoder_block_{i}")(x)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="decoder_norm")(x)
    x = on_tokens(nn.Dense(p * p * c, dtype=self.dtype, kernel_init=dense_init("mae"), name="decoder_pred"), x)
    return x[:, 1:].astype(jnp.float32)

  def embed(self, x: jax.Array) -> jax.Array:
    """The encoder's features of full, unmasked images (``model.pool``), for evaluation."""
    return self.encoder(x, train=False)
