"""Vision Transformer encoders (Dosovitskiy et al. 2021, arXiv:2010.11929), shaped as DINO's official code
(Caron et al. 2021, arXiv:2104.14294, vision_transformer.py): pre-norm blocks, a class token, learned position
embeddings interpolated to the input's patch grid (so multi-crop's small crops work), the final class token as
the representation. No BatchNorm, so nothing to synchronise across devices.
"""

from __future__ import annotations

import functools
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
_init = nn.initializers.truncated_normal(0.02)


class Block(nn.Module):
  """x + attention(LN(x)); x + MLP(LN(x)), GELU MLP of ``mlp_ratio`` x width."""
  num_heads: int
  mlp_ratio: float = 4.0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    dim = x.shape[-1]
    norm = functools.partial(nn.LayerNorm, epsilon=1e-6, dtype=self.dtype)
    dense = functools.partial(nn.Dense, dtype=self.dtype, kernel_init=_init)
    y = norm()(x)
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype, kernel_init=_init)(y, y)
    x = x + y
    y = dense(int(dim * self.mlp_ratio))(norm()(x))
    y = dense(dim)(nn.gelu(y, approximate=False))
    return x + y


class ViT(nn.Module):
  """[N, H, W, C] images -> [N, dim] class-token representations.

  Attributes:
    patch_size: side of the square patches (H and W must be multiples of it).
    dim, depth, num_heads: width, number of blocks, attention heads.
    base_grid: side of the patch grid the position embeddings are learned for (that of the global crops); other
      grids get them resized bicubically, as DINO's interpolate_pos_encoding.
  """
  patch_size: int = 16
  dim: int = 192
  depth: int = 12
  num_heads: int = 3
  mlp_ratio: float = 4.0
  base_grid: int = 14
  dtype: Dtype = jnp.float32
  # Accepted so every encoder is built the same way; a ViT has no stem and no BatchNorm.
  stem: str = "none"
  axis_name: str | None = None
  zero_init_residual: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = True) -> jnp.ndarray:
    chex.assert_rank(x, 4)
    n, h, w, _ = x.shape
    if h % self.patch_size or w % self.patch_size:
      raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
    x = nn.Conv(self.dim, (self.patch_size, self.patch_size), strides=self.patch_size, dtype=self.dtype,
                kernel_init=_init, name="patch_embed")(x.astype(self.dtype))
    grid_h, grid_w = x.shape[1], x.shape[2]
    x = x.reshape(n, grid_h * grid_w, self.dim)
    cls = self.param("cls_token", _init, (1, 1, self.dim))
    pos = self.param("pos_embed", _init, (1, 1 + self.base_grid ** 2, self.dim))
    patch_pos = pos[:, 1:].reshape(1, self.base_grid, self.base_grid, self.dim)
    if (grid_h, grid_w) != (self.base_grid, self.base_grid):
      patch_pos = jax.image.resize(patch_pos, (1, grid_h, grid_w, self.dim), method="bicubic")
    pos = jnp.concatenate([pos[:, :1], patch_pos.reshape(1, grid_h * grid_w, self.dim)], axis=1)
    x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, self.dim)).astype(x.dtype), x], axis=1) + pos
    for i in range(self.depth):
      x = Block(self.num_heads, self.mlp_ratio, dtype=self.dtype, name=f"block_{i}")(x)
    x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")(x)
    return x[:, 0].astype(jnp.float32)


# DINO's sizes; vit_micro is for CPU tests and Fashion-MNIST-sized runs.
ViTTiny = functools.partial(ViT, dim=192, depth=12, num_heads=3)
ViTSmall = functools.partial(ViT, dim=384, depth=12, num_heads=6)
ViTMicro = functools.partial(ViT, dim=64, depth=4, num_heads=2)
