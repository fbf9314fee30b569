"""MSN's network (Assran et al. 2022, "Masked Siamese Networks for Label-Efficient Learning", arXiv:2204.07141;
official ``src/msn_train.py`` ``init_model`` and ``src/deit.py``): a ViT's class token through a projection head
(2048-2048 with BatchNorm and GELU, then 256), and the learned prototypes the loss scores it against."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl.models.heads import MLP
from jaxssl.models.vit import ViT


class MSNNetwork(nn.Module):
  """[N, H, W, C] normalised images (and optional kept patches) -> [N, out] embeddings; ``prototypes`` [K, out].

  Attributes:
    encoder: the ViT.
    projector: the head on the class token (``MLP`` with BatchNorm and GELU).
    num_prototypes: K, initialised uniform in +-1 / sqrt(out) as the official code.
  """
  encoder: ViT
  projector: MLP
  num_prototypes: int

  def setup(self):
    bound = 1.0 / math.sqrt(self.projector.output_dim)
    init = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)
    self.prototypes = self.param("prototypes", init, (self.num_prototypes, self.projector.output_dim))

  def __call__(self, images: jax.Array, keep_ids: jax.Array | None = None, drop_keys: jax.Array | None = None,
               train: bool = False) -> jax.Array:
    """``keep_ids`` [N, K]: the patches the encoder sees (MSN's patch drop), None for all."""
    tokens = self.encoder.tokens(images, keep_ids=keep_ids, drop_keys=drop_keys if train else None)
    return self.projector(tokens.cls, train)

  def project(self, features: jax.Array, train: bool = True) -> jax.Array:
    """The head alone on [M, D] class tokens (the focal views go through it as one BatchNorm batch)."""
    return self.projector(features, train)

  def class_tokens(self, images: jax.Array, drop_keys: jax.Array | None = None, train: bool = False) -> jax.Array:
    return self.encoder.tokens(images, drop_keys=drop_keys if train else None).cls

  def embed(self, x: jax.Array) -> jax.Array:
    """The encoder's features of full, unmasked images (``model.pool``), for evaluation."""
    return self.encoder(x, train=False)

  def get_prototypes(self) -> jax.Array:
    return self.prototypes
