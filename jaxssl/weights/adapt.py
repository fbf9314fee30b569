"""Imported weights fitted to the run that starts from them: position embeddings resized to its patch grid, and
the first convolution fitted to its images' channels.

- ``resize_positions``: PyTorch's ``F.interpolate(mode="bicubic", align_corners=False)`` written out, in either of
  its two forms: without antialiasing (Keys' cubic with a = -0.75, edge samples repeated), as DINOv2's
  ``interpolate_pos_encoding`` and transformers resize, or with it (``antialias=True``: a = -0.5, the kernel
  widened when the grid shrinks, its window cut at the edges and renormalised, as PIL), as timm's
  ``resample_abs_pos_embed`` does by default.
- ``adapt_channels``: timm's ``adapt_input_conv``: RGB weights summed for one channel (a grey image seen as three
  equal channels gives the same response), repeated and rescaled for more.
"""

from __future__ import annotations

import math

import numpy as np


def _cubic(x: np.ndarray, a: float = -0.75) -> np.ndarray:
  """Keys' cubic convolution kernel."""
  x = np.abs(x)
  near = ((a + 2) * x - (a + 3)) * x * x + 1
  far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def bicubic_matrix(n_in: int, n_out: int, antialias: bool = False) -> np.ndarray:
  """[n_out, n_in]: PyTorch's bicubic interpolation (align_corners=False) of a length-n_in signal, with or
  without its antialiasing."""
  scale = n_in / n_out
  out = np.zeros((n_out, n_in), np.float64)
  for i in range(n_out):
    if antialias:                              # aten's _upsample_bicubic2d_aa (PIL's filter)
      center = scale * (i + 0.5)
      stretch = max(scale, 1.0)
      low, high = max(int(center - 2 * stretch + 0.5), 0), min(int(center + 2 * stretch + 0.5), n_in)
      taps = np.arange(low, high)
      weights = _cubic((taps - center + 0.5) / stretch, a=-0.5)
      out[i, low:high] = weights / weights.sum()
      continue
    x = (i + 0.5) * scale - 0.5
    base = math.floor(x)
    t = x - base
    for k in range(-1, 3):
      out[i, min(max(base + k, 0), n_in - 1)] += _cubic(np.asarray(k - t))
  return out


def resize_positions(grid_rows: np.ndarray, to_grid: int, antialias: bool = False) -> np.ndarray:
  """[G * G, D] position embeddings of a G x G patch grid -> [to_grid ** 2, D], bicubic as PyTorch (with
  ``antialias`` as timm resizes them, without as DINOv2 and transformers do)."""
  side = math.isqrt(grid_rows.shape[0])
  if side == to_grid:
    return grid_rows
  m = bicubic_matrix(side, to_grid, antialias)
  table = grid_rows.reshape(side, side, -1).astype(np.float64)
  resized = np.einsum("ij,jkd,lk->ild", m, table, m)
  return resized.reshape(to_grid * to_grid, -1).astype(np.float32)


def adapt_channels(kernel: np.ndarray, channels: int) -> np.ndarray:
  """A first convolution's kernel [..., C_in, C_out] (Flax's layout) for ``channels`` input channels."""
  have = kernel.shape[-2]
  if have == channels:
    return kernel
  if channels == 1:
    return kernel.sum(axis=-2, keepdims=True)
  repeats = math.ceil(channels / have)
  return (np.concatenate([kernel] * repeats, axis=-2)[..., :channels, :] * (have / channels)).astype(kernel.dtype)
