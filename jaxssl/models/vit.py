"""Vision Transformer encoders (Dosovitskiy et al. 2021, arXiv:2010.11929) that speak tokens and masks.

Pre-norm blocks with a class token, laid out as timm's ``VisionTransformer`` (which DINO's and MAE's official
code follow: ``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``), so official weights
map one to one. Position embeddings are learned (resized bicubically to other grids, as DINO's
``interpolate_pos_encoding``, so multi-crop's small crops work) or fixed 2-D sine-cosine ones (MAE, He et al.
2022, arXiv:2111.06377, ``util/pos_embed.py``). The encoder can run on a subset of the patches (``keep_ids``),
so MAE's encoder never sees mask tokens, and drops residual branches per example (stochastic depth, Huang et al.
2016) with per-example keys, so the same seed gives the same network on any number of devices. No BatchNorm,
so nothing to synchronise across devices.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxssl.models import block_gather

Dtype = Any


# ----------------------------------------------------------------------------------------------------------------
# Patches and position embeddings.


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
  """[N, H, W, C] -> [N, L, p*p*C] with L = (H/p)(W/p) patches in row-major order, each vector ordered (row in
  patch, column in patch, channel), as the official MAE ``patchify``."""
  n, h, w, c = images.shape
  p = patch_size
  if h % p or w % p:
    raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {p}")
  x = images.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(patches: jax.Array, patch_size: int, grid: tuple[int, int], channels: int) -> jax.Array:
  """The inverse of ``patchify``: [N, L, p*p*C] -> [N, grid_h * p, grid_w * p, C]."""
  n = patches.shape[0]
  (gh, gw), p = grid, patch_size
  x = patches.reshape(n, gh, gw, p, p, channels).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, gh * p, gw * p, channels)


def paste_predictions(images: jax.Array, patches: jax.Array, predicted: jax.Array, mask: jax.Array,
                      patch_size: int) -> tuple[jax.Array, jax.Array]:
  """A masked-patch method's picture of ``images`` [N, H, W, C] (their ``patches`` and the ``predicted`` ones
  [N, L, p*p*C]; ``mask`` [N, L], 1 where a patch was masked): the mask as an image [N, H, W, 1] and the images
  with the masked patches' predictions pasted in [N, H, W, C]."""
  removed = mask[..., None]
  grid = (images.shape[1] // patch_size, images.shape[2] // patch_size)
  rebuilt = unpatchify(patches * (1 - removed) + predicted * removed, patch_size, grid, images.shape[-1])
  as_image = unpatchify(jnp.broadcast_to(removed, patches.shape[:2] + (patch_size * patch_size,)), patch_size, grid, 1)
  return as_image, rebuilt


def _sincos_1d(dim: int, positions: np.ndarray) -> np.ndarray:
  """[M] positions -> [M, dim]: sines then cosines of positions x 1 / 10000^(2i / dim), i < dim / 2."""
  omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
  angles = positions.reshape(-1, 1).astype(np.float64) * omega
  return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_pos_embed_2d(dim: int, grid: tuple[int, int], cls_token: bool = False) -> np.ndarray:
  """Fixed 2-D sine-cosine position embeddings [(1 +) gh * gw, dim], equal to the official MAE
  ``get_2d_sincos_pos_embed`` (square grids there): the first half encodes a patch's column, the second its row;
  the class token's row (``cls_token``) is zeros."""
  if dim % 4:
    raise ValueError(f"sine-cosine position embeddings need a width divisible by 4; got {dim}")
  gh, gw = grid
  rows, cols = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
  emb = np.concatenate([_sincos_1d(dim // 2, cols), _sincos_1d(dim // 2, rows)], axis=1)
  if cls_token:
    emb = np.concatenate([np.zeros((1, dim)), emb], axis=0)
  return emb.astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# Initialisers: DINO's (truncated normal 0.02 everywhere) and MAE's (xavier-uniform linears and patch
# embedding, normal 0.02 tokens).

INITS = ("dino", "mae")


def rope_sin_cos(grid: tuple[int, int], head_dim: int, base: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
  """DINOv3's rotary position embedding (Simeoni et al. 2025; ``dinov3/layers/rope_position_encoding.py`` with
  ``base``, ``normalize_coords="separate"`` and no coordinate augmentation): each patch's centre in [-1, 1] along
  rows and columns, angles ``2 pi coord / period`` for ``head_dim / 4`` periods ``base ** (4 i / head_dim)``,
  rows' angles then columns', tiled twice. Returns (sin, cos), each [gh * gw, head_dim], float32."""
  if head_dim % 4:
    raise ValueError(f"RoPE needs a head width divisible by 4, not {head_dim}")
  periods = base ** (2 * np.arange(head_dim // 4, dtype=np.float64) / (head_dim // 2))
  rows = (np.arange(grid[0]) + 0.5) / grid[0]
  cols = (np.arange(grid[1]) + 0.5) / grid[1]
  coords = np.stack(np.meshgrid(rows, cols, indexing="ij"), axis=-1).reshape(-1, 2) * 2.0 - 1.0
  angles = (2 * np.pi * coords[:, :, None] / periods[None, None, :]).reshape(len(coords), -1)
  angles = np.tile(angles, 2)
  return np.sin(angles).astype(np.float32), np.cos(angles).astype(np.float32)


def apply_rope(x: jax.Array, sin: jax.Array, cos: jax.Array) -> jax.Array:
  """Queries or keys [N, T, H, Dh] with their last P tokens rotated (DINOv3's ``rope_apply``: ``x cos +
  rotate_half(x) sin``, rotate_half [a, b] -> [-b, a]); the T - P tokens before them (class token, registers)
  as they are. ``sin``, ``cos``: [P, Dh]."""
  prefix = x.shape[1] - sin.shape[0]
  patches = x[:, prefix:].astype(jnp.float32)
  first, second = jnp.split(patches, 2, axis=-1)
  rotated = patches * cos[None, :, None, :] + jnp.concatenate([-second, first], axis=-1) * sin[None, :, None, :]
  return jnp.concatenate([x[:, :prefix], rotated.astype(x.dtype)], axis=1)


def dense_init(init: str):
  return nn.initializers.xavier_uniform() if init == "mae" else nn.initializers.truncated_normal(0.02)


def patch_embed_init(init: str):
  # MAE initialises the patch projection as a linear layer on the flattened patch: fans p*p*C in and D out.
  if init == "mae":
    return nn.initializers.xavier_uniform(in_axis=(0, 1, 2), out_axis=-1)
  return nn.initializers.truncated_normal(0.02)


def token_init(init: str):
  return nn.initializers.normal(0.02) if init == "mae" else nn.initializers.truncated_normal(0.02)


# ----------------------------------------------------------------------------------------------------------------
# Blocks.


def on_tokens(layer: nn.Module, x: jax.Array) -> jax.Array:
  """A Dense layer on [..., D] tokens as one [tokens, D] matrix product. The same numbers as ``layer(x)``, but
  XLA:CPU runs the weight gradient of a dot with two contracting dimensions (batch and tokens) about 5x slower
  than that of the flattened product (22 ms against 4 ms for 256 x 50 tokens of 64 -> 256)."""
  return layer(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)


def drop_path(x: jax.Array, keys: jax.Array | None, rate: float | jax.Array) -> jax.Array:
  """Stochastic depth: each example's residual branch x [N, ...] is zeroed with probability ``rate`` (a draw
  from its own key in ``keys`` [N]) and scaled by 1 / (1 - rate) otherwise; the identity when ``keys`` is None
  or ``rate`` is 0. ``rate`` may be traced (the blocks under ``nn.scan``): a rate of 0 then keeps every
  example, as the identity does."""
  if keys is None or (isinstance(rate, float) and rate == 0.0):
    return x
  keep = jax.vmap(lambda k: jax.random.bernoulli(k, 1.0 - rate))(keys)
  scale = keep.astype(x.dtype) / (1.0 - rate)
  return x * scale.reshape((-1,) + (1,) * (x.ndim - 1))


class Attention(nn.Module):
  """Multi-head self-attention: fused qkv projection, ``jax.nn.dot_product_attention`` (cuDNN's fused kernel
  on GPUs), output projection. [N, T, D] -> [N, T, D]."""
  num_heads: int
  qkv_bias: bool = True
  weight_init: str = "dino"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, token_mask: jax.Array | None = None,
               rope: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
    """``token_mask``: bool [N, T], the real tokens (no query attends to the others: padding); None for all.
    ``rope``: (sin, cos) [P, Dh] rotating the queries and keys of the last P tokens (``apply_rope``)."""
    n, t, dim = x.shape
    if dim % self.num_heads:
      raise ValueError(f"width {dim} is not divisible by {self.num_heads} heads")
    qkv = on_tokens(nn.Dense(3 * dim, use_bias=self.qkv_bias, dtype=self.dtype,
                             kernel_init=dense_init(self.weight_init), name="qkv"), x)
    q, k, v = jnp.split(qkv.reshape(n, t, 3, self.num_heads, dim // self.num_heads), 3, axis=2)
    q, k, v = q[:, :, 0], k[:, :, 0], v[:, :, 0]
    if rope is not None:
      q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    mask = None if token_mask is None else token_mask[:, None, None, :]
    y = jax.nn.dot_product_attention(q, k, v, mask=mask)
    return on_tokens(nn.Dense(dim, dtype=self.dtype, kernel_init=dense_init(self.weight_init), name="proj"),
                     y.reshape(n, t, dim))


class Mlp(nn.Module):
  """fc1 (``hidden`` wide) -> exact GELU -> fc2."""
  hidden: int
  weight_init: str = "dino"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    dense = functools.partial(nn.Dense, dtype=self.dtype, kernel_init=dense_init(self.weight_init))
    return on_tokens(dense(x.shape[-1], name="fc2"),
                     nn.gelu(on_tokens(dense(self.hidden, name="fc1"), x), approximate=False))


class SwiGLU(nn.Module):
  """The SwiGLU feed-forward of DINOv2's ViT-g (Shazeer 2020, arXiv:2002.05202; DINOv2's ``SwiGLUFFNFused``,
  timm's ``SwiGLUPacked``): fc1 (``hidden`` wide, both halves packed in one layer) -> SiLU(first half) x second
  half -> fc2. DINOv2's ViT-g: width 1536, hidden 8192 (2 x 4096)."""
  hidden: int
  weight_init: str = "dino"
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    dense = functools.partial(nn.Dense, dtype=self.dtype, kernel_init=dense_init(self.weight_init))
    gate, value = jnp.split(on_tokens(dense(self.hidden, name="fc1"), x), 2, axis=-1)
    return on_tokens(dense(x.shape[-1], name="fc2"), nn.silu(gate) * value)


MLPS = {"gelu": Mlp, "swiglu": SwiGLU}


class LayerScale(nn.Module):
  """CaiT's LayerScale (Touvron et al. 2021, arXiv:2103.17239), as DINOv2's and timm's ``ls1`` / ``ls2``: a
  learned per-channel factor ``gamma`` on a residual branch, starting at ``init_value``."""
  init_value: float

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    gamma = self.param("gamma", nn.initializers.constant(self.init_value), (x.shape[-1],))
    return x * gamma.astype(x.dtype)


def swiglu_mlp_ratio(width: int, ratio: float = 4.0) -> float:
  """The ``mlp_ratio`` of DINOv2's SwiGLU feed-forward (``SwiGLUFFNFused``): each half ``int(width * ratio *
  2 / 3)`` rounded up to a multiple of 8, both halves packed in fc1 (ViT-g: 1536 -> 2 x 4096; ViT-L: 1024 ->
  2 x 2736)."""
  half = (int(width * ratio * 2 / 3) + 7) // 8 * 8
  return 2 * half / width


def mlp_width(width: int, mlp_ratio: float) -> int:
  """The feed-forward's hidden width (SwiGLU: both halves): ``round(width * mlp_ratio)`` (round, not int, so a
  ratio read off a checkpoint's shapes, 8192 / 1536, gives its width back)."""
  return int(round(width * mlp_ratio))


class Block(nn.Module):
  """x + drop_path(ls1(attention(LN(x)))); x + drop_path(ls2(MLP(LN(x)))), a feed-forward (``mlp``: GELU or
  SwiGLU) of ``mlp_ratio`` x width, LayerScale (``ls1``, ``ls2``) when ``layer_scale`` > 0 (its initial value).

  ``drop_keys`` [N] (or None): per-example keys for the two drop paths of this block; ``token_mask`` bool [N, T]
  (or None): the real tokens, the others padding that no token attends to."""
  num_heads: int
  mlp_ratio: float = 4.0
  qkv_bias: bool = True
  drop_path_rate: float = 0.0
  weight_init: str = "dino"
  dtype: Dtype = jnp.float32
  layer_scale: float = 0.0
  mlp: str = "gelu"

  @nn.compact
  def __call__(self, x: jax.Array, drop_keys: jax.Array | None = None,
               rate: jax.Array | None = None, token_mask: jax.Array | None = None,
               rope: tuple[jax.Array, jax.Array] | None = None) -> jax.Array:
    """``rate``: this block's drop-path rate when traced (under ``nn.scan``), else ``drop_path_rate``."""
    rate = self.drop_path_rate if rate is None else rate
    norm = functools.partial(nn.LayerNorm, epsilon=1e-6, dtype=self.dtype)
    keys = (None, None) if drop_keys is None else (
        jax.vmap(lambda k: jax.random.fold_in(k, 0))(drop_keys), jax.vmap(lambda k: jax.random.fold_in(k, 1))(drop_keys))
    scale = (lambda y, name: LayerScale(self.layer_scale, name=name)(y)) if self.layer_scale else (lambda y, _: y)
    y = Attention(self.num_heads, self.qkv_bias, self.weight_init, self.dtype, name="attn")(norm(name="norm1")(x),
                                                                                         token_mask, rope)
    x = x + drop_path(scale(y, "ls1"), keys[0], rate)
    mlp = MLPS[self.mlp](mlp_width(x.shape[-1], self.mlp_ratio), self.weight_init, self.dtype, name="mlp")
    y = mlp(norm(name="norm2")(x))
    return x + drop_path(scale(y, "ls2"), keys[1], rate)


@functools.lru_cache(maxsize=None)
def _block_shapes(width: int, mlp_ratio: float, qkv_bias: bool, layer_scale: float, mlp: str) -> Any:
  """The ShapeDtypeStructs of a whole ``Block``'s parameters for tokens ``width`` wide."""
  block = Block(num_heads=1, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, layer_scale=layer_scale, mlp=mlp, parent=None)
  return jax.eval_shape(lambda: block.init(jax.random.key(0), jnp.zeros((1, 1, width))))["params"]


def block_class(remat: bool, width: int, mlp_ratio: float, qkv_bias: bool, layer_scale: float = 0.0,
                mlp: str = "gelu", gather_axis: str | None = None):
  """The module class to build a transformer block ``width`` wide with: ``Block``, rematerialised in the
  backward pass when ``remat``. With ``gather_axis`` (the model of an FSDP step, ``jaxssl.models.block_gather``),
  a ``Block`` that receives its parameters as this device's shards and gathers them over that mesh axis on
  entry, always inside a rematerialised region (with ``remat`` everything is recomputed; without, only the
  gather), so that one block's whole parameters live at a time and the gather's transpose reduce-scatters their
  gradients."""
  if gather_axis is None:
    return nn.remat(Block) if remat else Block
  whole = _block_shapes(width, mlp_ratio, qkv_bias, layer_scale, mlp)

  def gather(variables):
    return {**variables, "params": block_gather.gather_to_shapes(variables["params"], whole, gather_axis)}

  gathering = nn.map_variables(Block, "params", trans_in_fn=gather)
  return nn.remat(gathering) if remat else nn.remat(gathering, policy=block_gather.recompute_gathered())


class _ScannedBlock(nn.Module):
  """One step of ``nn.scan`` over the blocks: carry (x, per-example drop keys or None, token mask or None, RoPE's
  (sin, cos) or None),
  per-layer inputs (block index, drop-path rate) -> the next carry. Its parameters are those of ``Block``,
  stacked."""
  num_heads: int
  mlp_ratio: float
  qkv_bias: bool
  weight_init: str
  dtype: Dtype
  drop_path: bool
  layer_scale: float = 0.0
  mlp: str = "gelu"
  gather_axis: str | None = None

  @nn.compact
  def __call__(self, carry, per_layer):
    x, drop_keys, token_mask, rope = carry
    index, rate = per_layer
    keys = None if drop_keys is None else jax.vmap(lambda k: jax.random.fold_in(k, index))(drop_keys)
    block = block_class(False, x.shape[-1], self.mlp_ratio, self.qkv_bias, self.layer_scale, self.mlp,
                        self.gather_axis)
    block = block(self.num_heads, self.mlp_ratio, self.qkv_bias, 0.0, self.weight_init, self.dtype,
                  layer_scale=self.layer_scale, mlp=self.mlp, name="block")
    return (block(x, keys, rate if self.drop_path else None, token_mask, rope), drop_keys, token_mask, rope), None


class Tokens(NamedTuple):
  """A ViT's output tokens, after the final LayerNorm: ``cls`` [N, D] (None without a class token), ``patches``
  [N, L', D] (the kept patches, in the order of ``keep_ids``, or all L in row-major order), the patch ``grid``
  (gh, gw) and the ``registers`` [N, R, D] (None without register tokens).

  With ``pool="global"`` there is no final LayerNorm: ``cls`` and ``patches`` are the last block's output and
  ``pooled`` [N, D] is their mean patch token through the LayerNorm ``fc_norm`` (None for the other pools)."""
  cls: jax.Array | None
  patches: jax.Array
  grid: tuple[int, int]
  pooled: jax.Array | None = None
  registers: jax.Array | None = None


class ViT(nn.Module):
  """[N, H, W, C] images -> tokens (``tokens``) or pooled [N, dim] features (``__call__``).

  Attributes:
    patch_size: side of the square patches (H and W must be multiples of it).
    dim, depth, num_heads, mlp_ratio: width, number of blocks, attention heads, MLP width / dim.
    base_grid: side of the patch grid learned position embeddings are made for (that of the global crops);
      other grids get them resized bicubically.
    qkv_bias: biases on the query, key and value projections (timm's and MAE's default).
    pos_embed: ``learned`` (DINO), ``sincos`` (fixed, not a parameter: MAE) or ``rope`` (DINOv3's rotary
      embedding of the patch tokens' queries and keys in every attention, ``rope_sin_cos``; no absolute
      positions; every patch of the grid, so not with ``keep_ids``).
    weight_init: ``dino`` (truncated normal 0.02) or ``mae`` (xavier-uniform linears and patch embedding, normal 0.02
      class token).
    drop_path_rate: stochastic depth, rising linearly from 0 at the first block to this rate at the last (timm),
      or the same at every block with ``drop_path_uniform`` (DINOv2's ``drop_path_uniform: true``).
    pool: the features ``__call__`` returns: ``cls`` (the class token), ``mean`` (the mean patch token),
      ``cls_mean`` (the two concatenated, [N, 2 * dim]: DINOv2's linear evaluation with ``avgpool``) or
      ``global``, MAE's fine-tuning pool (``models_vit.py`` with ``global_pool=True``): the mean of the last
      block's patch tokens, then a LayerNorm of its own, ``fc_norm``, in place of the final ``norm`` (which is
      then not a parameter; ``jaxssl.tasks.classifier`` starts ``fc_norm`` afresh on a pretrained encoder).
    class_token: a class token first in the sequence (without one, pool ``mean`` or ``global``: I-JEPA's
      encoders, timm's average-pooled ViTs).
    num_registers: register tokens after the class token (Darcet et al. 2024, arXiv:2309.16588; DINOv2 with
      registers): learned, without position embeddings, left out of every pool.
    layer_scale: LayerScale's initial value on every residual branch (DINOv2: 1e-5); 0 for none.
    mlp: the blocks' feed-forward, ``gelu`` or ``swiglu`` (DINOv2's ViT-g).
    remat: rematerialise each block in the backward pass (``nn.remat``): one block's activations live at a time.
    scan_layers: the blocks as one ``nn.scan`` over stacked parameters (``blocks/block/...``, leading axis
      ``depth``), so compilation does not grow with depth; the same function as the unrolled
      ``block_0 ... block_{depth-1}`` (``stack_blocks`` converts their parameters).
    gather_axis: the mesh axis an FSDP step's blocks gather their sharded parameters over (``block_class``);
      None (every model outside that step) for blocks that hold theirs whole.
  """
  patch_size: int = 16
  dim: int = 192
  depth: int = 12
  num_heads: int = 3
  mlp_ratio: float = 4.0
  base_grid: int = 14
  qkv_bias: bool = True
  pos_embed: str = "learned"
  weight_init: str = "dino"
  drop_path_rate: float = 0.0
  drop_path_uniform: bool = False
  pool: str = "cls"
  remat: bool = False
  scan_layers: bool = False
  dtype: Dtype = jnp.float32
  class_token: bool = True
  num_registers: int = 0
  layer_scale: float = 0.0
  mlp: str = "gelu"
  gather_axis: str | None = None

  @property
  def num_prefix_tokens(self) -> int:
    """The tokens before the patches: the class token (if any), then the registers."""
    return int(self.class_token) + self.num_registers

  def _positions(self, grid: tuple[int, int]) -> jax.Array:
    """[1, (1 +) gh * gw, dim] position embeddings for a patch grid (row 0: the class token's, when there is
    one; registers have none)."""
    first = int(self.class_token)
    if self.pos_embed == "rope":                 # positions enter the attention instead (``rope_sin_cos``)
      return jnp.zeros((1, first + grid[0] * grid[1], self.dim), jnp.float32)
    if self.pos_embed == "sincos":
      return jnp.asarray(sincos_pos_embed_2d(self.dim, grid, cls_token=self.class_token))[None]
    pos = self.param("pos_embed", nn.initializers.truncated_normal(0.02),
                     (1, first + self.base_grid ** 2, self.dim))
    patch_pos = pos[:, first:].reshape(1, self.base_grid, self.base_grid, self.dim)
    if grid != (self.base_grid, self.base_grid):
      patch_pos = jax.image.resize(patch_pos, (1, *grid, self.dim), method="bicubic")
    return jnp.concatenate([pos[:, :first], patch_pos.reshape(1, grid[0] * grid[1], self.dim)], axis=1)

  @nn.compact
  def tokens(self, x: jax.Array, keep_ids: jax.Array | None = None, drop_keys: jax.Array | None = None,
             masked: jax.Array | None = None, mask_token: jax.Array | None = None,
             keep_count: jax.Array | None = None) -> Tokens:
    """The encoder's tokens.

    Args:
      x: [N, H, W, C] normalised images.
      keep_ids: int [N, K] indices of the patches to keep (row-major), or None for all: the encoder then runs on
        the class token and those K patches only (MAE, I-JEPA's context).
      keep_count: int [N], with ``keep_ids``: only each example's first ``keep_count`` entries are patches, the
        rest padding that no token attends to (I-JEPA's contexts of varying size); None: all K.
      drop_keys: [N] per-example keys for drop path (``drop_path_rate``), or None for none (evaluation).
      masked: [N, L] 1 where a patch's embedding is replaced by ``mask_token`` [1, 1, dim] before the positions
        are added (iBOT's ``masked_embed``, BEiT's masking); None for none.
    """
    chex.assert_rank(x, 4)
    n, h, w, _ = x.shape
    if h % self.patch_size or w % self.patch_size:
      raise ValueError(f"image size {h}x{w} is not a multiple of the patch size {self.patch_size}")
    x = nn.Conv(self.dim, (self.patch_size, self.patch_size), strides=self.patch_size, dtype=self.dtype,
                kernel_init=patch_embed_init(self.weight_init), name="patch_embed")(x.astype(self.dtype))
    grid = (x.shape[1], x.shape[2])
    x = x.reshape(n, grid[0] * grid[1], self.dim)
    if masked is not None:
      x = jnp.where(masked[..., None] > 0, mask_token.astype(x.dtype), x)
    pos = self._positions(grid).astype(x.dtype)
    first = int(self.class_token)
    x = x + pos[:, first:]
    if keep_ids is not None:
      x = jnp.take_along_axis(x, keep_ids[..., None], axis=1)
    prefix = []
    if self.class_token:
      cls = self.param("cls_token", token_init(self.weight_init), (1, 1, self.dim))
      prefix.append(jnp.broadcast_to(cls.astype(x.dtype) + pos[:, :1], (n, 1, self.dim)))
    if self.num_registers:
      registers = self.param("reg_token", token_init(self.weight_init), (1, self.num_registers, self.dim))
      prefix.append(jnp.broadcast_to(registers.astype(x.dtype), (n, self.num_registers, self.dim)))
    x = jnp.concatenate(prefix + [x], axis=1)
    rope = None
    if self.pos_embed == "rope":
      if keep_ids is not None:
        raise ValueError("pos_embed='rope' rotates every patch of the grid: kept-patch subsets (MAE, I-JEPA) need "
                         "'learned' or 'sincos'")
      rope = tuple(jnp.asarray(a) for a in rope_sin_cos(grid, self.dim // self.num_heads))
    token_mask = None
    if keep_count is not None:                   # the class token and registers, then the real kept patches
      token_mask = jnp.arange(x.shape[1]) < self.num_prefix_tokens + keep_count[:, None]
    rates = (np.full(self.depth, self.drop_path_rate) if self.drop_path_uniform or self.depth == 1
             else np.linspace(0.0, self.drop_path_rate, self.depth))
    if self.scan_layers:
      step = nn.remat(_ScannedBlock) if self.remat else _ScannedBlock
      scan = nn.scan(step, variable_axes={"params": 0}, split_rngs={"params": True}, length=self.depth)
      blocks = scan(self.num_heads, self.mlp_ratio, self.qkv_bias, self.weight_init, self.dtype,
                    drop_path=self.drop_path_rate > 0, layer_scale=self.layer_scale, mlp=self.mlp,
                    gather_axis=self.gather_axis, name="blocks")
      per_layer = (jnp.arange(self.depth), jnp.asarray(rates, jnp.float32))
      (x, _, _, _), _ = blocks((x, drop_keys, token_mask, rope), per_layer)
    else:
      block = block_class(self.remat, self.dim, self.mlp_ratio, self.qkv_bias, self.layer_scale, self.mlp,
                          self.gather_axis)
      for i in range(self.depth):
        keys = None if drop_keys is None else jax.vmap(lambda k: jax.random.fold_in(k, i))(drop_keys)
        x = block(self.num_heads, self.mlp_ratio, self.qkv_bias, float(rates[i]), self.weight_init, self.dtype,
                  layer_scale=self.layer_scale, mlp=self.mlp, name=f"block_{i}")(x, keys, None, token_mask, rope)
    pooled = None
    if self.pool == "global":
      pooled = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="fc_norm")(x[:, self.num_prefix_tokens:].mean(axis=1))
      pooled = pooled.astype(jnp.float32)
    else:
      x = nn.LayerNorm(epsilon=1e-6, dtype=self.dtype, name="norm")(x)
    x = x.astype(jnp.float32)
    return Tokens(cls=x[:, 0] if self.class_token else None, patches=x[:, self.num_prefix_tokens:], grid=grid,
                  pooled=pooled, registers=x[:, first:self.num_prefix_tokens] if self.num_registers else None)

  def __call__(self, x: jax.Array, train: bool = False, drop_keys: jax.Array | None = None) -> jax.Array:
    """[N, H, W, C] -> [N, dim] features pooled as ``pool`` says, on every patch; drop path only when
    ``train`` (and then ``drop_keys`` are needed)."""
    if train and self.drop_path_rate > 0 and drop_keys is None and not self.is_initializing():
      raise ValueError(f"drop_path_rate={self.drop_path_rate} needs per-example drop_keys in training")
    if self.pool in ("cls", "cls_mean") and not self.class_token:
      raise ValueError(f"pool={self.pool!r} needs a class token (class_token=True); use 'mean' or 'global'")
    out = self.tokens(x, drop_keys=drop_keys if train else None)
    if self.pool == "global":
      return out.pooled
    if self.pool == "cls_mean":
      return jnp.concatenate([out.cls, out.patches.mean(axis=1)], axis=-1)
    return out.cls if self.pool == "cls" else out.patches.mean(axis=1)


def _is_block(key: str) -> bool:
  return key.startswith("block_") and key[6:].isdigit()


def stack_blocks(params: dict, depth: int) -> dict:
  """A ViT's parameters with ``block_0 ... block_{depth-1}`` -> those of the same ViT with ``scan_layers``
  (``blocks/block/...``, each leaf stacked along a new leading axis; numpy leaves stay on the host)."""
  out = {k: v for k, v in params.items() if not _is_block(k)}
  blocks = [params[f"block_{i}"] for i in range(depth)]
  on_host = all(isinstance(x, np.ndarray) for x in jax.tree.leaves(blocks))
  out["blocks"] = {"block": jax.tree.map(lambda *xs: (np.stack if on_host else jnp.stack)(xs), *blocks)}
  return out


def unstack_blocks(params: dict) -> dict:
  """The inverse of ``stack_blocks``."""
  out = {k: v for k, v in params.items() if k != "blocks"}
  stacked = params["blocks"]["block"]
  depth = jax.tree.leaves(stacked)[0].shape[0]
  for i in range(depth):
    out[f"block_{i}"] = jax.tree.map(lambda x: x[i], stacked)
  return out


def to_block_layout(params: dict, like: dict) -> tuple[dict, bool]:
  """A ViT encoder's parameters in the block layout of ``like`` (another ViT encoder's parameters, or their
  shapes): stacked by ``scan_layers`` (``blocks/block/...``) or one by one (``block_0 ...``), so that a run
  pretrained with ``model.scan_layers`` fine-tunes with the blocks one by one (layer-wise decay), or the other
  way. Returns (the parameters, whether they were converted); trees that are not ViTs come back as they are."""
  if "blocks" in like and "blocks" not in params and "block_0" in params:
    return stack_blocks(params, depth=sum(map(_is_block, params))), True
  if "block_0" in like and "block_0" not in params and "block" in params.get("blocks", {}):
    return unstack_blocks(params), True
  return params, False


# DINO's and the ViT paper's sizes; vit_micro is for CPU tests and Fashion-MNIST-sized runs. ViT-H/14 takes
# model.patch_size=14.
ViTMicro = functools.partial(ViT, dim=64, depth=4, num_heads=2)
ViTTiny = functools.partial(ViT, dim=192, depth=12, num_heads=3)
ViTSmall = functools.partial(ViT, dim=384, depth=12, num_heads=6)
ViTBase = functools.partial(ViT, dim=768, depth=12, num_heads=12)
ViTLarge = functools.partial(ViT, dim=1024, depth=24, num_heads=16)
ViTHuge = functools.partial(ViT, dim=1280, depth=32, num_heads=16)
ViTGiant = functools.partial(ViT, dim=1536, depth=40, num_heads=24)     # DINOv2's vit_giant2


def for_global_pool(saved: dict, fresh: dict) -> tuple[dict, bool]:
  """A pretrained ViT encoder's parameters ``saved`` fitted to a fresh encoder with ``model.pool="global"``
  (``fc_norm`` after the mean, no final ``norm``), as MAE's ``main_finetune.py`` loads them: the checkpoint's
  ``norm`` is left out and ``fc_norm`` keeps its fresh initialisation (the missing keys it asserts). Returns
  (the parameters to load, whether that was done); other trees are returned as they are."""
  if "fc_norm" in fresh and "norm" not in fresh and "norm" in saved and "fc_norm" not in saved:
    return {**{k: v for k, v in saved.items() if k != "norm"}, "fc_norm": fresh["fc_norm"]}, True
  return saved, False
