"""A drop-in ``lax.conv_general_dilated`` whose gradients XLA:CPU computes quickly.

On the CPU, XLA runs a forward convolution well but its backward pass badly: the kernel gradient (a
convolution whose "kernel" is the whole image and whose contraction runs over the batch) takes 3-6x the
forward time, and the input gradient of a strided convolution (a convolution with a dilated input) 3-4x.
Measured on a 2-core CPU, small ResNet, batch 512 (BENCHMARKS.md). This module keeps XLA's forward
convolution and writes the backward pass as convolutions XLA:CPU runs at forward speed:

* input gradient: for stride 1, JAX's own transpose (a plain convolution of the output gradient with the
  flipped kernel, as fast as the forward); for stride s > 1, one matrix product (output gradient x kernel:
  the gradient of every input patch) and a col2im that places the patches back s pixels apart;
* kernel gradient: the convolution JAX's transpose rule emits, over chunks of at least 16 examples of the
  batch, summed (one contraction over the whole batch is 2-3x slower than several over its parts on XLA:CPU).

Values and gradients equal ``lax.conv_general_dilated``'s up to float rounding (tests/test_conv.py). Only
NHWC inputs with HWIO kernels, no dilation and one feature group take this path; any other call goes to
``lax.conv_general_dilated`` unchanged. ``flax.linen.Conv(conv_general_dilated=conv_general_dilated)`` uses it
with the same parameters as a plain ``nn.Conv``.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
from jax import lax

_NHWC = ("NHWC", "HWIO", "NHWC")
# Contracting over at most this many examples at a time is what makes the kernel gradient fast on XLA:CPU.
_MAX_FILTER_GRAD_CHUNKS = 32
_MIN_CHUNK = 16


def _is_nhwc(dimension_numbers, ndim: int) -> bool:
  if ndim != 4 or dimension_numbers is None:
    return False
  expected = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC)
  return lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), dimension_numbers) == expected


def conv_general_dilated(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int], padding,
                         lhs_dilation=None, rhs_dilation=None, dimension_numbers=None,
                         feature_group_count: int = 1, batch_group_count: int = 1, precision=None,
                         preferred_element_type=None) -> jax.Array:
  """``lax.conv_general_dilated`` with the CPU-friendly backward pass where it applies (see the module doc)."""
  plain = (_is_nhwc(dimension_numbers, lhs.ndim) and feature_group_count == 1 and batch_group_count == 1
           and all(d == 1 for d in (lhs_dilation or (1, 1))) and all(d == 1 for d in (rhs_dilation or (1, 1)))
           and preferred_element_type is None)
  if not plain:
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, batch_group_count, precision,
                                    preferred_element_type)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:3], rhs.shape[:2], window_strides, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _conv(lhs, rhs, tuple(int(s) for s in window_strides), pads, precision)


def _lax_conv(x, kernel, strides, pads, precision):
  return lax.conv_general_dilated(x, kernel, strides, pads, dimension_numbers=_NHWC, precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv(x, kernel, strides, pads, precision):
  return _lax_conv(x, kernel, strides, pads, precision)


def _conv_fwd(x, kernel, strides, pads, precision):
  return _lax_conv(x, kernel, strides, pads, precision), (x, kernel)


def _strided_input_grad(dy, kernel, x_shape, strides, pads):
  """Input gradient of a strided convolution as one matrix product and a col2im.

  Each output pixel's gradient times the kernel gives the gradient of its input patch; the patches are
  placed back with stride s (``lax.pad`` interior padding) and summed. On XLA:CPU this runs at about the
  forward convolution's cost, where the dilated-input convolution JAX's transpose rule emits takes 3-5x.
  """
  kh, kw = kernel.shape[:2]
  _, height, width, _ = x_shape
  out_h, out_w = dy.shape[1:3]
  (top, bottom), (left, right) = pads
  padded_h, padded_w = height + top + bottom, width + left + right
  patches = jnp.einsum("nhwo,ijco->nhwijc", dy, kernel)              # [N, out_h, out_w, kh, kw, C_in]
  zero = jnp.zeros((), dy.dtype)
  dx = None
  for i in range(kh):
    for j in range(kw):
      # Output pixel o came from padded input pixel o * s + i.
      placed = lax.pad(patches[:, :, :, i, j, :], zero, (
          (0, 0, 0),
          (i, padded_h - i - (out_h - 1) * strides[0] - 1, strides[0] - 1),
          (j, padded_w - j - (out_w - 1) * strides[1] - 1, strides[1] - 1),
          (0, 0, 0)))
      dx = placed if dx is None else dx + placed
  return dx[:, top:top + height, left:left + width, :]


def _chunks(batch: int) -> int:
  for count in range(_MAX_FILTER_GRAD_CHUNKS, 1, -1):
    if batch % count == 0 and batch // count >= _MIN_CHUNK:
      return count
  return 1


def _conv_bwd(strides, pads, precision, residuals, dy):
  x, kernel = residuals
  if strides == (1, 1):
    # JAX's transpose of a stride-1 convolution is a stride-1 convolution with the flipped kernel: fast.
    _, input_vjp = jax.vjp(lambda v: _lax_conv(v, kernel, strides, pads, precision), x)
    (dx,) = input_vjp(dy)
  else:
    dx = _strided_input_grad(dy, kernel, x.shape, strides, pads)

  count = _chunks(x.shape[0])
  xs = x.reshape((count, -1) + x.shape[1:])
  dys = dy.reshape((count, -1) + dy.shape[1:])
  dkernel = None
  for index in range(count):
    _, kernel_vjp = jax.vjp(lambda k: _lax_conv(xs[index], k, strides, pads, precision), kernel)
    (part,) = kernel_vjp(dys[index])
    part = part.astype(jnp.float32)              # chunks summed in float32 also under bfloat16 compute
    dkernel = part if dkernel is None else dkernel + part
  return dx, dkernel.astype(kernel.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)
