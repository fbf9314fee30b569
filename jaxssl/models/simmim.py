"""SimMIM's network (Xie et al. 2022, "SimMIM: A Simple Framework for Masked Image Modeling", arXiv:2111.09886;
official ``models/simmim.py``): the ViT on every patch, the masked ones' embeddings replaced by a learned mask
token before the positions are added, and one linear layer from each patch token to its patch's pixels (the
official decoder: a 1 x 1 convolution to stride^2 x C channels, then PixelShuffle)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl.models.vit import ViT


class SimMIMNetwork(nn.Module):
  """[N, H, W, C] normalised images and a [N, L] patch mask (1: masked; None: none) -> predicted pixels [N, L,
  p*p*C], in
  the order of ``jaxssl.models.vit.patchify``. With ``train``, the encoder's drop path draws from ``drop_keys``.

  Attributes:
    encoder: the ViT.
    channels: the images' channels (the decoder's output is p*p*channels per patch).
  """
  encoder: ViT
  channels: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array, masked: jax.Array | None = None, drop_keys: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    # Official: zeros, then truncated normal (std 0.02, cut at +-0.02).
    mask_token = self.param("mask_token", nn.initializers.truncated_normal(0.02, lower=-1.0, upper=1.0),
                            (1, 1, self.encoder.dim))
    tokens = self.encoder.tokens(images, drop_keys=drop_keys if train else None, masked=masked,
                                 mask_token=mask_token)
    p = self.encoder.patch_size
    return nn.Dense(p * p * self.channels, dtype=self.dtype, name="decoder")(tokens.patches).astype(jnp.float32)

  def embed(self, x: jax.Array) -> jax.Array:
    """The encoder's features of full, unmasked images (``model.pool``), for evaluation."""
    return self.encoder(x, train=False)
