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

import math
from typing import Hashable, Sequence

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


def negative_cosine(p: jax.Array, z: jax.Array, axis_name: AxisName = None) -> jax.Array:
  """SimSiam's D(p, z) = -mean_i cos(p_i, z_i) (Chen and He 2021, arXiv:2011.10566, eq. 1).

  The caller stops the gradient of ``z`` and symmetrises: L = D(p1, z2) / 2 + D(p2, z1) / 2.

  Args:
    p: [N, D] predictions; z: [N, D] projections.
  """
  chex.assert_rank([p, z], 2)
  chex.assert_equal_shape([p, z])
  cos = jnp.sum(_l2_normalize(p) * _l2_normalize(z), axis=-1)
  return _pmean(-jnp.mean(cos), axis_name)


def barlow_twins_loss(z1: jax.Array, z2: jax.Array, lambd: float = 0.0051, eps: float = 1e-5,
                      axis_name: AxisName = None) -> jax.Array:
  """Barlow Twins (Zbontar et al. 2021, arXiv:2103.03230, eq. 1), as the official code.

  Each embedding is standardised per dimension over the global batch (BatchNorm without affine: biased
  variance, ``eps``), C = z1_n^T z2_n / N is the [D, D] cross-correlation, and

      L = sum_d (1 - C_dd)^2 + lambd * sum_{d != e} C_de^2

  Args:
    z1, z2: [N, D] projections of the two views.
    lambd: weight of the redundancy-reduction term (0.0051 in the official code).
  """
  chex.assert_rank([z1, z2], 2)
  chex.assert_equal_shape([z1, z2])

  def standardise(z):
    zc, scatter, n = _centred_statistics(z, axis_name)
    return zc / jnp.sqrt(jnp.diagonal(scatter) / n + eps), n

  n1, n = standardise(z1)
  n2, _ = standardise(z2)
  c = _psum(n1.T @ n2, axis_name) / n                                  # [D, D]
  on_diagonal = jnp.sum((jnp.diagonal(c) - 1.0) ** 2)
  off_diagonal = jnp.sum(c ** 2) - jnp.sum(jnp.diagonal(c) ** 2)
  return on_diagonal + lambd * off_diagonal


def _match_global_keys(queries: jax.Array, keys: jax.Array, temperature: float, axis_name: AxisName) -> jax.Array:
  """mean_i CE(q_i . K^T / T, i) for this device's queries against the L2-normalised keys of the global batch,
  query i's positive being its own key; the local mean, before any average over devices."""
  n = queries.shape[0]
  all_keys = _all_gather(_l2_normalize(keys), axis_name)              # [N_global, D]
  logits = _l2_normalize(queries) @ all_keys.T / temperature          # [n, N_global]
  positive = _device_offset(n, axis_name) + jnp.arange(n)
  log_prob = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.take_along_axis(log_prob, positive[:, None], axis=-1).mean()


def info_nce(q: jax.Array, k: jax.Array, temperature: float = 0.2, axis_name: AxisName = None) -> jax.Array:
  """MoCo v3's contrastive loss (Chen, Xie and He 2021, arXiv:2104.02057, algorithm 1).

  Queries q_i are matched against the keys of the global batch; k_i is the positive, the other N - 1 keys are
  negatives: L = 2T * mean_i CE(q_i k^T / T, i). Both are L2-normalised. The caller stops the gradient of the
  momentum encoder's keys and symmetrises: ctr(q1, k2) + ctr(q2, k1).

  Args:
    q: [N, D] queries (online predictions); k: [N, D] keys (momentum-encoder projections).
  """
  chex.assert_rank([q, k], 2)
  chex.assert_equal_shape([q, k])
  return _pmean(2.0 * temperature * _match_global_keys(q, k, temperature, axis_name), axis_name)


def moco_queue_loss(q: jax.Array, k: jax.Array, queue: jax.Array, temperature: float = 0.2,
                    axis_name: AxisName = None) -> jax.Array:
  """MoCo's InfoNCE against a queue of keys (He et al. 2020, arXiv:1911.05722, algorithm 1; MoCo v2, Chen et
  al. 2020, arXiv:2003.04297), as the official ``moco/builder.py``.

  Each query's positive is its own image's key; its K negatives are the queue's keys (earlier batches' keys,
  not this batch's):

      L = mean_i CE([q_i . k_i, q_i . queue_1, ..., q_i . queue_K] / T, 0)

  over the global batch (the official code's per-GPU mean, averaged over GPUs by DDP's gradient mean).

  Args:
    q: [N, D] queries (the online network's projections of one view; normalised here).
    k: [N, D] keys (the momentum encoder's projections of the other view; normalised here, no gradient).
    queue: [K, D] unit keys of earlier batches (``enqueue``); no gradient.
    temperature: T (MoCo v2: 0.2).
  """
  chex.assert_rank([q, k, queue], 2)
  chex.assert_equal_shape([q, k])
  q = _l2_normalize(q)
  k = jax.lax.stop_gradient(_l2_normalize(k))
  positive = jnp.sum(q * k, axis=-1, keepdims=True)                          # [N, 1]
  negative = q @ jax.lax.stop_gradient(queue).astype(q.dtype).T              # [N, K]
  logits = jnp.concatenate([positive, negative], axis=1) / temperature
  per_example = jax.nn.logsumexp(logits, axis=1) - logits[:, 0]
  return _pmean(jnp.mean(per_example), axis_name)


def epps_pulley(x: jax.Array, t_max: float = 3.0, knots: int = 17, axis_name: AxisName = None) -> jax.Array:
  """The Epps-Pulley statistic of each column of ``x`` against N(0, 1), as LeJEPA computes it (Balestriero and
  LeCun 2025, arXiv:2511.08544; the official ``EppsPulley``):

      T = N * integral over t of |phi_N(t) - exp(-t^2 / 2)|^2 exp(-t^2 / 2) dt

  with phi_N the samples' empirical characteristic function (its real and imaginary parts: the means of cos(t x)
  and sin(t x) over the global batch), the integral over t in [-t_max, t_max] as twice the trapezoid rule on
  ``knots`` points of [0, t_max] (the integrand is even), and N the global batch.

  Args:
    x: [N, S] this device's share of the samples, one column per statistic (a random direction).
  Returns:
    [S] statistics, the same on every device.
  """
  t = jnp.linspace(0.0, t_max, knots, dtype=jnp.float32)
  step = t_max / (knots - 1)
  trapezoid = jnp.full((knots,), 2.0 * step, jnp.float32).at[jnp.array([0, knots - 1])].set(step)
  normal = jnp.exp(-0.5 * t * t)                                         # N(0, 1)'s characteristic function
  xt = x.astype(jnp.float32)[..., None] * t                              # [N, S, knots]
  cos_mean = _pmean(jnp.mean(jnp.cos(xt), axis=0), axis_name)            # [S, knots]
  sin_mean = _pmean(jnp.mean(jnp.sin(xt), axis=0), axis_name)
  error = jnp.square(cos_mean - normal) + jnp.square(sin_mean)
  n_global = _psum(jnp.asarray(x.shape[0], jnp.float32), axis_name)
  return (error @ (trapezoid * normal)) * n_global


def random_directions(key: jax.Array, dim: int, num: int) -> jax.Array:
  """[dim, num] unit columns, Gaussian directions (SIGReg's slices; the same key gives the same on every device)."""
  directions = jax.random.normal(key, (dim, num), jnp.float32)
  return directions / jnp.linalg.norm(directions, axis=0, keepdims=True)


def sigreg(z: jax.Array, directions: jax.Array, t_max: float = 3.0, knots: int = 17,
           axis_name: AxisName = None) -> jax.Array:
  """SIGReg, LeJEPA's Sketched Isotropic Gaussian Regulariser (arXiv:2511.08544): the Epps-Pulley statistic of
  the embeddings ``z`` [N, K] projected on each of the ``directions`` [K, S] (``random_directions``, drawn anew
  each step), averaged over the directions: small when every 1-D projection of the global batch looks N(0, 1)."""
  chex.assert_rank([z, directions], 2)
  return jnp.mean(epps_pulley(z.astype(jnp.float32) @ directions, t_max, knots, axis_name))


def lejepa_loss(projections: Sequence[jax.Array], num_global: int, directions: jax.Array, lam: float = 0.05,
                t_max: float = 3.0, knots: int = 17, axis_name: AxisName = None) -> tuple[jax.Array, jax.Array,
                                                                                         jax.Array]:
  """LeJEPA's loss (arXiv:2511.08544): every view's embedding predicts the mean of its image's global views'
  embeddings (no stop-gradient), and SIGReg keeps each view's embeddings isotropic Gaussian:

      L = (1 - lam) * mean_{v, i, k} (c_ik - z_vik)^2 + lam * mean_v SIGReg(z_v),   c_i = mean_{g global} z_gi

  Args:
    projections: one [N, K] array per view, the ``num_global`` global views first.
    directions: [K, S] SIGReg's directions of this step, shared by the views.
    lam: the trade-off, LeJEPA's one hyper-parameter.
  Returns:
    (loss, prediction term, SIGReg term), each the same on every device.
  """
  z = jnp.stack([p.astype(jnp.float32) for p in projections])             # [V, N, K]
  centres = jnp.mean(z[:num_global], axis=0)                              # [N, K]
  prediction = _pmean(jnp.mean(jnp.square(centres - z)), axis_name)
  regulariser = jnp.mean(jnp.stack([sigreg(view, directions, t_max, knots, axis_name) for view in z]))
  return (1.0 - lam) * prediction + lam * regulariser, prediction, regulariser


def supcon(features: jax.Array, labels: jax.Array, temperature: float = 0.07,
           base_temperature: float = 0.07, axis_name: AxisName = None) -> jax.Array:
  """Supervised contrastive loss L^sup_out (Khosla et al. 2020, arXiv:2004.11362, eq. 2), as the official code.

  Every view of every image is an anchor i; its positives P(i) are all other views with the same label (the
  other views of the same image included), and

      l_i = -(T / T_base) / |P(i)| * sum_{p in P(i)} log( exp(z_i.z_p/T) / sum_{a != i} exp(z_i.z_a/T) )

  over all V*N views of the global batch; the loss is the mean over anchors. Features are L2-normalised here.

  Args:
    features: [N, V, D] projections of V views of N images.
    labels: int [N] class labels (use arange(N) offset per device for the unsupervised SimCLR special case).
  """
  chex.assert_rank(features, 3)
  chex.assert_shape(labels, (features.shape[0],))
  n, views, _ = features.shape
  z = _l2_normalize(features)
  anchors = z.transpose(1, 0, 2).reshape(views * n, -1)               # view-major, as torch.cat(unbind(dim=1))
  anchor_labels = jnp.tile(labels, views)
  all_z = _all_gather(z, axis_name)                                   # [N_global, V, D]
  all_labels = _all_gather(labels, axis_name)
  n_global = all_z.shape[0]
  contrast = all_z.transpose(1, 0, 2).reshape(views * n_global, -1)
  contrast_labels = jnp.tile(all_labels, views)

  logits = anchors @ contrast.T / temperature                         # [V n, V N]
  offset = _device_offset(n, axis_name)
  rows = jnp.arange(views * n)
  self_col = (rows // n) * n_global + offset + rows % n
  not_self = jnp.arange(views * n_global)[None, :] != self_col[:, None]
  logits = jnp.where(not_self, logits, -jnp.inf)
  log_prob = jax.nn.log_softmax(logits, axis=-1)
  positives = (anchor_labels[:, None] == contrast_labels[None, :]) & not_self
  mean_log_prob_pos = jnp.sum(jnp.where(positives, log_prob, 0.0), axis=1) / jnp.maximum(
      jnp.sum(positives, axis=1), 1)
  loss = -(temperature / base_temperature) * jnp.mean(mean_log_prob_pos)
  return _pmean(loss, axis_name)


def nearest_neighbour(z: jax.Array, support: jax.Array) -> jax.Array:
  """NNCLR's NN(z, Q): for each row of z, the most cosine-similar row of the support set (L2-normalised).

  Args:
    z: [N, D] projections; support: [Q, D] support set (queue of past projections).

  Returns:
    [N, D] the chosen (normalised) support rows, without gradient.
  """
  chex.assert_rank([z, support], 2)
  support = _l2_normalize(support)
  index = jnp.argmax(_l2_normalize(z) @ support.T, axis=1)
  return jax.lax.stop_gradient(support[index])


def nnclr_loss(nn: jax.Array, p: jax.Array, temperature: float = 0.1, axis_name: AxisName = None) -> jax.Array:
  """NNCLR's contrastive term (Dwibedi et al. 2021, arXiv:2104.14548, eq. 2), as solo-learn computes it.

  The nearest neighbour nn_i of one view's projection is the positive of the other view's prediction p_i; the
  predictions of the other images of the global batch are the negatives:

      L = mean_i -log( exp(nn_i . p_i / T) / sum_k exp(nn_i . p_k / T) )

  Args:
    nn: [N, D] nearest neighbours from the support set; p: [N, D] predictions of the other view.
  """
  chex.assert_rank([nn, p], 2)
  chex.assert_equal_shape([nn, p])
  return _pmean(_match_global_keys(nn, p, temperature, axis_name), axis_name)


def random_queue(key: jax.Array, size: int, dim: int) -> dict[str, jax.Array]:
  """A queue's start (NNCLR's support set, MoCo's keys): ``queue`` [size, dim] of random unit rows, as the
  official MoCo and solo-learn start theirs, and the ``pointer`` to its first row (``enqueue``)."""
  queue = jax.random.normal(key, (size, dim))
  return {"queue": queue / jnp.linalg.norm(queue, axis=1, keepdims=True), "pointer": jnp.zeros((), jnp.int32)}


def enqueue(queue: jax.Array, pointer: jax.Array, z: jax.Array, axis_name: AxisName = None):
  """Writes the L2-normalised projections of the global batch into a FIFO queue (NNCLR, MoCo).

  Args:
    queue: [Q, D]; pointer: int32 scalar, next row to write; z: [N, D] this device's projections.
      Q must be a multiple of the global batch N_global.

  Returns:
    (new queue, new pointer), identical on every device.
  """
  batch = _all_gather(jax.lax.stop_gradient(_l2_normalize(z)), axis_name)   # [N_global, D]
  queue = jax.lax.dynamic_update_slice(queue, batch.astype(queue.dtype), (pointer, 0))
  return queue, (pointer + batch.shape[0]) % queue.shape[0]


def mean_shift_loss(query: jax.Array, target: jax.Array, bank: jax.Array, k: int = 5) -> jax.Array:
  """Mean Shift (Koohpayegani et al. 2021, arXiv:2105.07269, eq. 3), as the official code (UMBCvision/MSF).

  The k nearest neighbours of the target embedding in the memory bank (which already holds the current
  targets, so the target itself is the first neighbour; k = 1 is BYOL) are the regression targets of the query:

      L = mean_i (1/k) sum_{j in NN_k(t_i)} || q_i/|q_i| - b_j ||^2 = mean_i (1/k) sum_j (2 - 2 q_i . b_j)

  Args:
    query: [N, D] online predictions; target: [N, D] EMA-target projections; bank: [Q, D] unit rows.
    k: neighbours.

  Returns:
    Scalar loss over this device's queries; average it over devices (the bank is already global).
  """
  chex.assert_rank([query, target, bank], 2)
  q = _l2_normalize(query)
  t = jax.lax.stop_gradient(_l2_normalize(target))
  _, index = jax.lax.top_k(t @ bank.T, k)                              # [N, k] most similar = nearest
  neighbours = jax.lax.stop_gradient(bank[index])                      # [N, k, D]
  return jnp.mean(2.0 - 2.0 * jnp.einsum("nd,nkd->nk", q, neighbours))


def whiten(x: jax.Array, eps: float = 0.0) -> jax.Array:
  """Cholesky whitening of a batch (W-MSE's Whitening2d): W (x - mean) with W = L^-1, Cov = L L^T.

  Cov uses the unbiased (N - 1) normalisation and is shrunk as (1 - eps) Cov + eps I. Gradients flow through W.

  Args:
    x: [N, D] with N > D.

  Returns:
    [N, D] whitened rows: their covariance is the identity.
  """
  chex.assert_rank(x, 2)
  n, d = x.shape
  xc = x - jnp.mean(x, axis=0)
  cov = xc.T @ xc / (n - 1)
  cov = (1.0 - eps) * cov + eps * jnp.eye(d)
  lower = jnp.linalg.cholesky(cov)
  return jax.scipy.linalg.solve_triangular(lower, xc.T, lower=True).T


def wmse_loss(z1: jax.Array, z2: jax.Array, w_size: int = 128, eps: float = 0.0,
              axis_name: AxisName = None, key: jax.Array | None = None, w_iter: int = 1) -> jax.Array:
  """W-MSE with two views (Ermolov et al. 2021, arXiv:2007.06346, eq. 3), as the official code.

  The global batch is split into sub-batches of ``w_size`` examples; each view's embeddings are whitened within
  each sub-batch (the same examples for both views), and the loss is the normalised MSE 2 - 2 cos between the
  whitened views, averaged over the batch. As the official code, this is repeated ``w_iter`` times, each time
  with sub-batches drawn by a fresh random permutation of the batch (from ``key``), and averaged. Without
  ``key`` the sub-batches are contiguous slices (the batch is already a random sample), which needs w_iter 1.

  Args:
    z1, z2: [N, D] embeddings of the two views; the global batch must be a multiple of ``w_size`` > D.
    key: PRNG key for the permutations; the same on every device (the permutation is of the global batch).
  """
  chex.assert_rank([z1, z2], 2)
  chex.assert_equal_shape([z1, z2])
  z1, z2 = _all_gather(z1, axis_name), _all_gather(z2, axis_name)    # whitening needs the whole sub-batch
  n, d = z1.shape
  if n % w_size:
    raise ValueError(f"W-MSE needs a global batch ({n}) that is a multiple of w_size ({w_size})")
  if key is None and w_iter != 1:
    raise ValueError("wmse_loss with w_iter > 1 needs a key for the permutations")

  def whiten_chunks(z):
    return jax.vmap(lambda chunk: whiten(chunk, eps))(z.reshape(n // w_size, w_size, d)).reshape(n, d)

  def one_pass(order):
    w1, w2 = whiten_chunks(z1[order]), whiten_chunks(z2[order])
    cos = jnp.sum(_l2_normalize(w1) * _l2_normalize(w2), axis=-1)
    return jnp.mean(2.0 - 2.0 * cos)

  if key is None:
    return one_pass(jnp.arange(n))
  return jnp.mean(jnp.stack([one_pass(jax.random.permutation(jax.random.fold_in(key, i), n))
                             for i in range(w_iter)]))


def sinkhorn(scores: jax.Array, epsilon: float = 0.05, iterations: int = 3, weights: jax.Array | None = None,
             axis_name: AxisName = None) -> jax.Array:
  """SwAV's Sinkhorn-Knopp equipartition (Caron et al. 2020, arXiv:2006.09882, eq. 3; official code).

  Q = exp(scores / epsilon)^T is alternately normalised so that the K prototypes share the B samples of the global
  batch equally and each sample's assignment sums to one.

  Args:
    scores: [n, K] prototype scores of this device's samples.
    weights: optional [n] 0/1 mask of samples that take part (rows with 0 are left out of the equipartition).

  Returns:
    [n, K] soft assignments (rows sum to 1 for the samples that take part), without gradient.
  """
  chex.assert_rank(scores, 2)
  scores = jax.lax.stop_gradient(scores)
  n, k = scores.shape
  weights = jnp.ones((n,), scores.dtype) if weights is None else weights.astype(scores.dtype)
  q = jnp.exp(scores / epsilon).T * weights[None, :]                   # [K, n]
  total = _psum(jnp.sum(weights), axis_name)                          # B over all devices
  q = q / _psum(jnp.sum(q), axis_name)
  for _ in range(iterations):
    q = q / _psum(jnp.sum(q, axis=1, keepdims=True), axis_name) / k   # each prototype gets 1/K of the mass
    q = q / jnp.maximum(jnp.sum(q, axis=0, keepdims=True), 1e-30) / total   # each sample gets 1/B
  return (q * total).T


def swav_loss(scores: list[jax.Array], temperature: float = 0.1, epsilon: float = 0.05,
              iterations: int = 3, queue_scores: list[jax.Array] | None = None,
              queue_weights: jax.Array | None = None, assign_views: tuple[int, ...] = (0, 1),
              axis_name: AxisName = None) -> jax.Array:
  """SwAV's swapped prediction (Caron et al. 2020, eq. 1), as the official code.

  For each view s in ``assign_views`` the codes q_s = Sinkhorn(scores_s) (computed together with the queue's
  scores, if any) are predicted from every other view t:

      L = mean_s [ 1/(V-1) sum_{t != s} mean_i -sum_k q_s[i, k] log softmax(scores_t[i] / T)_k ]

  Args:
    scores: V arrays [n, K] of cosine scores between normalised projections and normalised prototypes.
    queue_scores: per assigned view, [m, K] scores of this device's slice of the queue, or None.
    queue_weights: [m] 0/1, which queue rows take part (0 until the queue is full).
  """
  num_views = len(scores)
  total = 0.0
  for position, s in enumerate(assign_views):
    out, weights = scores[s], None
    if queue_scores is not None:
      out = jnp.concatenate([queue_scores[position], out])
      weights = jnp.concatenate([queue_weights, jnp.ones((scores[s].shape[0],), out.dtype)])
    q = sinkhorn(out, epsilon, iterations, weights, axis_name)[-scores[s].shape[0]:]
    sub = 0.0
    for t in range(num_views):
      if t != s:
        sub -= jnp.mean(jnp.sum(q * jax.nn.log_softmax(scores[t] / temperature, axis=-1), axis=-1))
    total += sub / (num_views - 1)
  return _pmean(total / len(assign_views), axis_name)


def centred_softmax(teacher: jax.Array, center: jax.Array, temperature: float | jax.Array) -> jax.Array:
  """DINO's teacher targets: softmax((t - c) / T) over the last axis, without gradient."""
  return jax.nn.softmax((jax.lax.stop_gradient(teacher) - center) / temperature, axis=-1)


def sinkhorn_targets(teacher: jax.Array, temperature: float | jax.Array, iterations: int = 3,
                     weights: jax.Array | None = None, axis_name: AxisName = None) -> jax.Array:
  """DINOv2's Sinkhorn-Knopp centring of the teacher (Oquab et al. 2023, arXiv:2304.07193; official
  ``SinkhornKnoppTeacher``): SwAV's equipartition of exp(t / T) over the global batch, in place of the centre.

  Args:
    teacher: [n, K] teacher logits of this device's samples; weights: optional [n] 0/1 (which take part: the
      masked patch tokens for the patch loss).
  """
  return sinkhorn(teacher, temperature, iterations, weights, axis_name)


def distillation_loss(student: list[jax.Array], targets: list[jax.Array], student_temperature: float = 0.1,
                      axis_name: AxisName = None) -> jax.Array:
  """DINO's cross-view term on given teacher targets: the mean over pairs (a, v), v != a, of
  mean_i H(targets[a][i], softmax(student[v][i] / T_s)); teacher view a is student view a.

  Args:
    student: V arrays [n, K] of student logits (global views first).
    targets: G arrays [n, K] of teacher probabilities on the G global views (``centred_softmax`` or
      ``sinkhorn_targets``).
  """
  total, terms = 0.0, 0
  for a, target in enumerate(targets):
    target = jax.lax.stop_gradient(target)
    for v, s in enumerate(student):
      if v != a:
        total += jnp.mean(-jnp.sum(target * jax.nn.log_softmax(s / student_temperature, axis=-1), axis=-1))
        terms += 1
  return _pmean(total / terms, axis_name)


def dino_loss(student: list[jax.Array], teacher: list[jax.Array], center: jax.Array,
              student_temperature: float = 0.1, teacher_temperature: float | jax.Array = 0.04,
              axis_name: AxisName = None) -> jax.Array:
  """DINO's self-distillation loss (Caron et al. 2021, arXiv:2104.14294, eq. 3; official DINOLoss).

  The teacher's outputs on the global views, centred and sharpened, P_t = softmax((t - c) / T_t), are the targets
  of the student's outputs on every *other* view, P_s = softmax(s / T_s):

      L = mean over pairs (a in teacher views, v in student views, v != a) of mean_i H(P_t[a, i], P_s[v, i])

  Teacher view a is student view a (the global views come first).

  Args:
    student: V arrays [n, K] of student logits (global views first).
    teacher: G arrays [n, K] of teacher logits on the G global views (no gradient).
    center: [K] running centre of the teacher logits.
  """
  targets = [centred_softmax(t, center, teacher_temperature) for t in teacher]
  return distillation_loss(student, targets, student_temperature, axis_name)


def ibot_patch_loss(student: jax.Array, targets: jax.Array, mask: jax.Array, student_temperature: float = 0.1,
                    axis_name: AxisName = None) -> jax.Array:
  """iBOT's masked-patch loss (Zhou et al. 2022, arXiv:2111.07832, eq. 2; official ``iBOTLoss``, lightly's and
  DINOv2's ``IBOTPatchLoss``) for one global view: the cross-entropy between the teacher's targets on the
  unmasked image and the student's outputs on the masked one, averaged over each image's masked patches, then
  over the images (an image without masked patches counts 0):

      L = mean_n [ sum_l m_nl H(P_t[n, l], softmax(s[n, l] / T_s)) / max(sum_l m_nl, 1) ]

  Args:
    student: [n, L, K] the student's patch logits; targets: [n, L, K] the teacher's probabilities
      (``centred_softmax`` with the patch centre, or ``sinkhorn_targets``); mask: [n, L] 1 where masked.
  """
  chex.assert_rank([student, targets, mask], [3, 3, 2])
  ce = -jnp.sum(jax.lax.stop_gradient(targets) * jax.nn.log_softmax(student / student_temperature, axis=-1), -1)
  per_image = jnp.sum(ce * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1.0)
  return _pmean(jnp.mean(per_image), axis_name)


def koleo_loss(x: jax.Array, eps: float = 1e-8, axis_name: AxisName = None, group_size: int = 0) -> jax.Array:
  """The KoLeo regulariser (Sablayrolles et al. 2019, arXiv:1806.03198), as DINOv2's ``KoLeoLoss`` and
  lightly's: minus the mean log distance of each L2-normalised row to its nearest other row,

      L = -mean_i log(|| x_i - x_nn(i) + eps || + eps),   nn(i) = argmax_{j != i} x_i . x_j

  With ``axis_name`` the neighbours come from the global batch. DINOv2 searches each GPU's batch: with
  ``group_size`` > 0 each run of that many consecutive rows is searched on its own (its official per-GPU batch)
  and the loss is the mean over the groups, the same on any number of devices whose shares are whole groups.

  Args:
    x: [n, D] features (DINOv2: the student's class tokens of one global view).
  """
  chex.assert_rank(x, 2)
  if group_size:
    n = x.shape[0]
    if n % group_size:
      raise ValueError(f"koleo_loss: {n} rows are not groups of {group_size}")
    per_group = jax.vmap(lambda g: koleo_loss(g, eps))(x.reshape(n // group_size, group_size, x.shape[-1]))
    return _pmean(jnp.mean(per_group), axis_name)
  x = _l2_normalize(x.astype(jnp.float32), eps)
  others = _all_gather(x, axis_name)
  n = x.shape[0]
  similarity = x @ jax.lax.stop_gradient(others).T
  self_index = _device_offset(n, axis_name) + jnp.arange(n)
  similarity = similarity.at[jnp.arange(n), self_index].set(-2.0)
  neighbour = others[jnp.argmax(similarity, axis=1)]
  distance = jnp.sqrt(jnp.sum((x - neighbour + eps) ** 2, axis=-1))
  return _pmean(-jnp.mean(jnp.log(distance + eps)), axis_name)


def gram_loss(student: jax.Array, teacher: jax.Array, normalize: bool = True, remove_negative: str = "none",
              axis_name: AxisName = None) -> jax.Array:
  """DINOv3's Gram anchoring (Simeoni et al. 2025, arXiv:2508.10104; official ``dinov3/loss/gram_loss.py``,
  ``img_level=True``): the mean squared difference between each image's patch-similarity (Gram) matrix under the
  student and under the Gram teacher,

      L = mean_{n, i, j} (s_n,i . s_n,j - t_n,i . t_n,j)^2   (rows L2-normalised with ``normalize``)

  ``remove_negative``: ``none``; ``both`` (``remove_neg``: negative similarities set to 0 in both matrices);
  ``teacher`` (``remove_only_teacher_neg``: the teacher's negatives set to 0, and the student's where both are
  negative).

  Args:
    student: [n, P, D] the student's patch tokens (before its heads); teacher: [n, P, D] the Gram teacher's.
  """
  chex.assert_rank([student, teacher], 3)
  s, t = student.astype(jnp.float32), jax.lax.stop_gradient(teacher).astype(jnp.float32)
  if normalize:
    unit = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    s, t = unit(s), unit(t)
  student_sim = jnp.einsum("npd,nqd->npq", s, s)
  target_sim = jnp.einsum("npd,nqd->npq", t, t)
  if remove_negative == "both":
    student_sim, target_sim = jnp.maximum(student_sim, 0.0), jnp.maximum(target_sim, 0.0)
  elif remove_negative == "teacher":
    student_sim = jnp.where((student_sim < 0) & (target_sim < 0), 0.0, student_sim)
    target_sim = jnp.maximum(target_sim, 0.0)
  return _pmean(jnp.mean((student_sim - target_sim) ** 2), axis_name)


MSN_PRIORS = ("uniform", "power_law")


def power_law_prior(size: int, exponent: float) -> jax.Array:
  """PMSN's prior over the prototypes (Assran et al. 2022, arXiv:2210.07277; lightly's
  ``_power_law_distribution``): p_k proportional to k ** -exponent, k = 1 .. size."""
  k = jnp.arange(1, size + 1, dtype=jnp.float32)
  p = k ** (-exponent)
  return p / jnp.sum(p)


def msn_loss(anchors: jax.Array, targets: jax.Array, prototypes: jax.Array, temperature: float = 0.1,
             sharpen_temperature: float | jax.Array = 0.25, sinkhorn_iterations: int = 3,
             regularization_weight: float = 1.0, prior: str = "uniform", power_law_exponent: float = 0.25,
             axis_name: AxisName = None) -> tuple[jax.Array, dict[str, jax.Array]]:
  """MSN's loss (Assran et al. 2022, "Masked Siamese Networks for Label-Efficient Learning", arXiv:2204.07141;
  official ``src/losses.py``, ``init_msn_loss`` with one-hot prototype labels and ``me_max``): each anchor's soft
  assignment to the prototypes, p = softmax(cos(z, prototypes) / T), against its image's sharpened target
  assignment (the target view's, ``p_t ** (1 / T_sharpen)`` renormalised, then Sinkhorn-Knopp over the global
  batch when ``sinkhorn_iterations`` > 0, without gradient), plus the mean-entropy maximisation of the average
  anchor assignment over the global batch:

      L = mean_i H(target_i, p_i) + w * (sum_k pbar_k log pbar_k + log K)          (prior ``uniform``)
      L = mean_i H(target_i, p_i) + w * KL(prior || pbar)                           (``power_law``: PMSN)

  Args:
    anchors: [V * n, D] the anchor views' embeddings, view after view (the official ``torch.cat`` order).
    targets: [n, D] the target view's embeddings (the EMA encoder's on the unmasked view).
    prototypes: [K, D] the learned prototypes.

  Returns:
    (loss, metrics): the cross-entropy ``msn_ce``, the regulariser ``me_max`` and the number of prototypes
    some target picks ``targets_used`` (this device's).
  """
  chex.assert_rank([anchors, targets, prototypes], 2)
  unit = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  protos = unit(prototypes.astype(jnp.float32))
  probs = jax.nn.softmax(unit(anchors.astype(jnp.float32)) @ protos.T / temperature, axis=-1)
  target = jax.nn.softmax(unit(jax.lax.stop_gradient(targets).astype(jnp.float32)) @
                          jax.lax.stop_gradient(protos).T / temperature, axis=-1)
  target = target ** (1.0 / sharpen_temperature)
  target = target / jnp.sum(target, axis=-1, keepdims=True)
  if sinkhorn_iterations > 0:
    target = sinkhorn(jnp.log(target), 1.0, sinkhorn_iterations, axis_name=axis_name)
  target = jax.lax.stop_gradient(jnp.tile(target, (anchors.shape[0] // targets.shape[0], 1)))
  ce = _pmean(jnp.mean(-jnp.sum(target * jnp.log(probs), axis=-1)), axis_name)
  mean_probs = _pmean(jnp.mean(probs, axis=0), axis_name)
  if prior == "power_law":
    p = power_law_prior(mean_probs.shape[0], power_law_exponent)
    regulariser = jnp.sum(p * (jnp.log(p) - jnp.log(mean_probs)))
  else:
    regulariser = jnp.sum(mean_probs * jnp.log(mean_probs)) + math.log(mean_probs.shape[0])
  used = jnp.sum(jnp.zeros((target.shape[-1],)).at[jnp.argmax(target, axis=-1)].set(1.0))
  return ce + regularization_weight * regulariser, {"msn_ce": ce, "me_max": regulariser, "targets_used": used}


def ijepa_loss(predictions: jax.Array, targets: jax.Array, axis_name: AxisName = None,
               valid: jax.Array | None = None) -> jax.Array:
  """I-JEPA's loss (Assran et al. 2023, arXiv:2301.08243; official ``src/train.py``: ``F.smooth_l1_loss``
  then an all-reduce mean): the smooth L1 (Huber, beta 1) distance between the predictor's outputs and the
  target encoder's layer-normalised tokens at the target patches, averaged over every element.

  Args:
    predictions, targets: [..., D] of the same shape (targets without gradient).
    valid: optional bool, broadcastable to ``predictions.shape[:-1]``: the real target entries (padding left
      out of the mean). Every device must hold as many real entries (I-JEPA's are one block size per batch), so
      that the mean over devices is the mean over the global batch.
  """
  chex.assert_equal_shape([predictions, targets])
  diff = jnp.abs(predictions.astype(jnp.float32) - jax.lax.stop_gradient(targets).astype(jnp.float32))
  huber = jnp.where(diff < 1.0, 0.5 * diff ** 2, diff - 0.5)
  if valid is None:
    return _pmean(jnp.mean(huber), axis_name)
  weight = jnp.broadcast_to(valid, huber.shape[:-1])[..., None].astype(jnp.float32)
  return _pmean(jnp.sum(huber * weight) / (jnp.sum(weight) * huber.shape[-1]), axis_name)


def dino_center(center: jax.Array, teacher: list[jax.Array], momentum: float = 0.9,
                axis_name: AxisName = None) -> jax.Array:
  """c <- m c + (1 - m) mean of the teacher logits over all global views of the global batch."""
  local = sum(jnp.sum(jax.lax.stop_gradient(t), axis=0) for t in teacher)
  count = sum(t.shape[0] for t in teacher) * (1 if axis_name is None else jax.lax.psum(1, axis_name))
  return momentum * center + (1.0 - momentum) * _psum(local, axis_name) / count


def patch_statistics(patches: jax.Array, eps: float = 1e-6) -> tuple[jax.Array, jax.Array]:
  """Each patch's mean and std over its pixels, [N, L, P] -> two [N, L, 1]: the unbiased variance plus ``eps``
  under the root, as MAE's ``norm_pix_loss`` normalises its targets."""
  mean = patches.mean(axis=-1, keepdims=True)
  return mean, jnp.sqrt(patches.var(axis=-1, keepdims=True, ddof=1) + eps)


def simmim_loss(predictions: jax.Array, patches: jax.Array, mask: jax.Array, channels: int, eps: float = 1e-5,
                axis_name: AxisName = None) -> jax.Array:
  """SimMIM's reconstruction loss (Xie et al. 2022, arXiv:2111.09886; official ``models/simmim.py``): the L1
  distance between the predicted and the input pixels, over the masked patches' pixels and channels only,

      L = sum_{n,l,j} mask_nl |pred_nlj - x_nlj| / (sum_{n,l} mask_nl * p * p + eps) / C

  (the official code upsamples the patch mask to pixels and divides by its sum, then by the channels). Over the
  global batch; each image masks the same count, so it is also the mean of the per-device losses.

  Args:
    predictions, patches: [N, L, p*p*C] predicted and true pixels (``jaxssl.models.vit.patchify``).
    mask: [N, L] 1 for masked patches.
    channels: C, the images' channels.
  """
  chex.assert_rank([predictions, patches, mask], [3, 3, 2])
  chex.assert_equal_shape([predictions, patches])
  pixels_per_patch = patches.shape[-1] // channels
  error = jnp.sum(jnp.abs(predictions.astype(jnp.float32) - patches.astype(jnp.float32)), axis=-1)
  masked_error = _psum(jnp.sum(error * mask), axis_name)
  masked_pixels = _psum(jnp.sum(mask), axis_name) * pixels_per_patch
  return masked_error / (masked_pixels + eps) / channels


def mae_loss(predictions: jax.Array, patches: jax.Array, mask: jax.Array, norm_pix: bool = True,
             eps: float = 1e-6, axis_name: AxisName = None) -> jax.Array:
  """MAE's reconstruction loss (He et al. 2022, arXiv:2111.06377; official ``models_mae.forward_loss``).

  The mean squared error per patch, averaged over the pixels of a patch, then over the removed patches only:

      L = sum_{n,l} mask_nl * mean_j (pred_nlj - target_nlj)^2 / sum_{n,l} mask_nl

  With ``norm_pix`` each target patch is normalised by its own mean and unbiased variance,
  (x - mean) / sqrt(var + eps), as the official ``norm_pix_loss``.

  Args:
    predictions: [N, L, P] predicted patches (P = p*p*C).
    patches: [N, L, P] the image's patches (``jaxssl.models.vit.patchify``), the target.
    mask: [N, L] 1 for removed patches, 0 for kept ones.
    norm_pix: normalise each target patch.
    axis_name: when set, the sums run over the global batch.

  Returns:
    Scalar loss.
  """
  chex.assert_rank([predictions, patches, mask], [3, 3, 2])
  chex.assert_equal_shape([predictions, patches])
  target = patches.astype(jnp.float32)
  if norm_pix:
    mean, std = patch_statistics(target, eps)
    target = (target - mean) / std
  per_patch = jnp.mean((predictions.astype(jnp.float32) - target) ** 2, axis=-1)
  return _psum(jnp.sum(per_patch * mask), axis_name) / _psum(jnp.sum(mask), axis_name)
