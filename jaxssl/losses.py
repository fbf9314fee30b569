"""Pure self-supervised losses on arrays.

Every loss takes projections (or predictions) of shape [N, D] for the examples on this device and returns a
scalar. When ``axis_name`` is given the loss is computed over the *global* batch of all devices mapped over that
axis (``jax.shard_map`` or ``jax.pmap``) and every device returns the same value: the value the loss would have on
the concatenated batch on one device. Gradients follow pmap semantics (the transpose of a collective carries the
cotangents across devices, and each of the D devices seeds its copy of the global loss), so a per-device
gradient is D times the global loss's gradient through that device's inputs, and averaging parameter gradients
over the axis (``lax.pmean``, as the trainer does) gives exactly the gradient of the global loss.
"""

from __future__ import annotations

from typing import Hashable

import chex
import jax
import jax.numpy as jnp

AxisName = Hashable | None


def _l2_normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """Divides each row by its L2 norm (the norm clipped at ``eps``, as torch's F.normalize)."""
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
  return x / jnp.maximum(norm, eps)


def _pmean(x: jax.Array, axis_name: AxisName) -> jax.Array:
  return x if axis_name is None else jax.lax.pmean(x, axis_name)


def _psum(x: jax.Array, axis_name: AxisName) -> jax.Array:
  return x if axis_name is None else jax.lax.psum(x, axis_name)


def _all_gather(x: jax.Array, axis_name: AxisName) -> jax.Array:
  return x if axis_name is None else jax.lax.all_gather(x, axis_name, tiled=True)


def _device_offset(local_size: int, axis_name: AxisName) -> jax.Array | int:
  """Index of this device's first example in the global batch."""
  return 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_size


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float = 0.1,
            axis_name: AxisName = None) -> jax.Array:
  """SimCLR's normalised temperature-scaled cross entropy (Chen et al. 2020, arXiv:2002.05709, eq. 1).

  With cosine similarities s(a, b) = a.b / (|a||b|), each of the 2N views u_i is an anchor with positive v_i
  (the other view of its image) and loss

      l_i = -log( exp(s(u_i, v_i)/T) / sum_{k != i} exp(s(u_i, w_k)/T) )

  where w ranges over all 2N views of the global batch; i.e. 1 positive and 2N-2 negatives. The result is the
  mean of l over the 2N anchors.

  Args:
    z1, z2: [N, D] projections of the two views of the same N images (this device's share).
    temperature: T.
    axis_name: mapped axis whose devices together hold the global batch; negatives then come from all of them.

  Returns:
    Scalar loss, the same on every device.
  """
  chex.assert_rank([z1, z2], 2)
  chex.assert_equal_shape([z1, z2])
  n = z1.shape[0]
  local = _l2_normalize(jnp.concatenate([z1, z2], axis=0))            # [2n, D]: this device's anchors
  z1_all = _all_gather(_l2_normalize(z1), axis_name)                  # [N, D]
  z2_all = _all_gather(_l2_normalize(z2), axis_name)                  # [N, D]
  candidates = jnp.concatenate([z1_all, z2_all], axis=0)              # [2N, D]
  big_n = z1_all.shape[0]
  logits = local @ candidates.T / temperature                         # [2n, 2N]

  offset = _device_offset(n, axis_name)
  rows = jnp.arange(2 * n)
  example = offset + rows % n                                         # global index of the image
  is_second_view = rows >= n
  self_col = jnp.where(is_second_view, big_n + example, example)
  positive_col = jnp.where(is_second_view, example, big_n + example)

  logits = jnp.where(jnp.arange(2 * big_n)[None, :] == self_col[:, None], -jnp.inf, logits)
  log_prob = jax.nn.log_softmax(logits, axis=-1)
  loss = -jnp.take_along_axis(log_prob, positive_col[:, None], axis=-1).mean()
  return _pmean(loss, axis_name)


def byol_loss(p: jax.Array, z: jax.Array, axis_name: AxisName = None) -> jax.Array:
  """BYOL's normalised mean squared error (Grill et al. 2020, arXiv:2006.07733, eq. 2).

      L = mean_i || p_i/|p_i| - z_i/|z_i| ||^2 = mean_i (2 - 2 cos(p_i, z_i))

  The caller symmetrises over the two views and stops the gradient of the target ``z``.

  Args:
    p: [N, D] online predictions.
    z: [N, D] target projections.
    axis_name: when set, the mean runs over the global batch.

  Returns:
    Scalar loss.
  """
  chex.assert_rank([p, z], 2)
  chex.assert_equal_shape([p, z])
  cos = jnp.sum(_l2_normalize(p) * _l2_normalize(z), axis=-1)
  return _pmean(jnp.mean(2.0 - 2.0 * cos), axis_name)


def _centred_statistics(z: jax.Array, axis_name: AxisName) -> tuple[jax.Array, jax.Array, int]:
  """Returns (z - global mean, sum over the global batch of outer products [D, D], global N)."""
  n_local = z.shape[0]
  n_global = n_local * (1 if axis_name is None else jax.lax.psum(1, axis_name))
  mean = _psum(jnp.sum(z, axis=0), axis_name) / n_global
  zc = z - mean
  scatter = _psum(zc.T @ zc, axis_name)
  return zc, scatter, n_global


def vicreg_loss(z1: jax.Array, z2: jax.Array, sim_coeff: float = 25.0, std_coeff: float = 25.0,
                cov_coeff: float = 1.0, eps: float = 1e-4, axis_name: AxisName = None,
                return_terms: bool = False):
  """VICReg: variance-invariance-covariance regularisation (Bardes et al. 2022, arXiv:2105.04906).

  As the official code (facebookresearch/vicreg, main_vicreg.py):

      invariance = mean_{i,d} (z1 - z2)^2                                      (MSE)
      variance   = [mean_d relu(1 - sqrt(Var(z1)_d + eps)) + same for z2] / 2
      covariance = [sum_{d != e} C(z1)_{de}^2 + same for z2] / D,   C(z) = (z - mean)^T (z - mean) / (N - 1)
      loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance

  Variances use the unbiased (N - 1) normalisation. With ``axis_name`` the mean, variance and covariance run
  over the global batch, as the official code does after gathering.

  Args:
    z1, z2: [N, D] embeddings ("expander" outputs) of the two views.
    return_terms: also return a dict with the three unweighted terms.

  Returns:
    Scalar loss (and the terms dict if asked).
  """
  chex.assert_rank([z1, z2], 2)
  chex.assert_equal_shape([z1, z2])
  dim = z1.shape[1]
  invariance = _pmean(jnp.mean((z1 - z2) ** 2), axis_name)

  variance = 0.0
  covariance = 0.0
  for z in (z1, z2):
    _, scatter, n = _centred_statistics(z, axis_name)
    cov = scatter / (n - 1)
    std = jnp.sqrt(jnp.diagonal(cov) + eps)
    variance += jnp.mean(jax.nn.relu(1.0 - std)) / 2.0
    off_diagonal = cov - jnp.diag(jnp.diagonal(cov))
    covariance += jnp.sum(off_diagonal ** 2) / dim

  loss = sim_coeff * invariance + std_coeff * variance + cov_coeff * covariance
  if return_terms:
    return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}
  return loss
