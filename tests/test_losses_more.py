"""SimSiam, Barlow Twins, MoCo v3 and SupCon losses: hand values, references, and 8 devices against 1."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.ops import losses
from helpers import on_devices


def _random(key, shape):
  return jax.random.normal(jax.random.key(key), shape)


def _barlow_reference(z1, z2, lambd, eps):
  """Straight from the official code: BatchNorm1d(affine=False) in training mode, then c = bn(z1).T bn(z2) / N."""
  z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
  bn = lambda z: (z - z.mean(0)) / np.sqrt(z.var(0) + eps)
  c = bn(z1).T @ bn(z2) / len(z1)
  on = ((np.diag(c) - 1) ** 2).sum()
  off = (c ** 2).sum() - (np.diag(c) ** 2).sum()
  return on + lambd * off


class TestNegativeCosine:

  def test_hand_value(self):
    p = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    z = jnp.array([[0.0, 2.0], [3.0, 0.0]])
    assert float(losses.negative_cosine(p, z)) == pytest.approx(-0.5)

  def test_eight_devices_match_one(self):
    p, z = _random(0, (16, 4)), _random(1, (16, 4))
    sharded = on_devices(lambda a, b, axis: losses.negative_cosine(a, b, axis), p, z)
    assert float(sharded) == pytest.approx(float(losses.negative_cosine(p, z)), abs=1e-6)


class TestBarlowTwins:

  def test_hand_value(self):
    z1 = jnp.array([[1.0, 1.0], [-1.0, -1.0]])
    z2 = jnp.array([[1.0, -1.0], [-1.0, 1.0]])
    # Standardised: unchanged. C = [[1, -1], [1, -1]]: on-diagonal (1-1)^2 + (-1-1)^2 = 4, off-diagonal 1 + 1.
    assert float(losses.barlow_twins_loss(z1, z2, lambd=0.0051, eps=0.0)) == pytest.approx(4 + 0.0051 * 2, abs=1e-5)

  def test_matches_official_formula(self):
    z1, z2 = _random(0, (12, 5)), _random(1, (12, 5)) * 3 + 2
    expected = _barlow_reference(z1, z2, 0.0051, 1e-5)
    assert float(losses.barlow_twins_loss(z1, z2)) == pytest.approx(float(expected), rel=1e-4)

  def test_invariant_to_affine_rescaling_per_dimension(self):
    z1, z2 = _random(0, (12, 5)), _random(1, (12, 5))
    scaled = z1 * jnp.arange(1.0, 6.0) + 7.0
    assert float(losses.barlow_twins_loss(scaled, z2)) == pytest.approx(float(losses.barlow_twins_loss(z1, z2)), rel=1e-3)

  def test_eight_devices_match_one(self):
    z1, z2 = _random(0, (32, 6)), _random(1, (32, 6))
    sharded = on_devices(lambda a, b, axis: losses.barlow_twins_loss(a, b, axis_name=axis), z1, z2)
    assert float(sharded) == pytest.approx(float(losses.barlow_twins_loss(z1, z2)), rel=1e-5)


class TestInfoNCE:

  def test_hand_value(self):
    # q_i = k_i orthonormal, T = 1: CE = log(1 + 1/e) per query, scaled by 2T.
    eye = jnp.eye(2)
    assert float(losses.info_nce(eye, eye, temperature=1.0)) == pytest.approx(2 * math.log(1 + 1 / math.e), abs=1e-6)

  def test_scale_invariant_and_finite_gradient(self):
    q, k = _random(0, (8, 4)), _random(1, (8, 4))
    assert float(losses.info_nce(4 * q, 0.3 * k)) == pytest.approx(float(losses.info_nce(q, k)), abs=1e-5)
    assert bool(jnp.all(jnp.isfinite(jax.grad(losses.info_nce)(q, k))))

  def test_eight_devices_match_one(self):
    q, k = _random(0, (32, 6)), _random(1, (32, 6))
    sharded = on_devices(lambda a, b, axis: losses.info_nce(a, b, 0.2, axis), q, k)
    assert float(sharded) == pytest.approx(float(losses.info_nce(q, k, 0.2)), abs=1e-5)


class TestSupCon:

  def test_hand_value(self):
    # Three orthogonal single views, labels (0, 0, 1), T = base T = 1: anchors 0 and 1 each have one positive
    # among two equally similar candidates (log 1/2); anchor 2 has no positive and contributes 0.
    features = jnp.eye(3)[:, None, :]
    value = losses.supcon(features, jnp.array([0, 0, 1]), temperature=1.0, base_temperature=1.0)
    assert float(value) == pytest.approx(2 * math.log(2) / 3, abs=1e-6)

  def test_distinct_labels_reduce_to_nt_xent(self):
    z1, z2 = _random(0, (8, 5)), _random(1, (8, 5))
    value = losses.supcon(jnp.stack([z1, z2], axis=1), jnp.arange(8), temperature=0.5, base_temperature=0.5)
    assert float(value) == pytest.approx(float(losses.nt_xent(z1, z2, temperature=0.5)), abs=1e-5)

  def test_more_positives_from_shared_labels(self):
    z = _random(0, (8, 2, 5))
    labels = jnp.array([0, 0, 1, 1, 2, 2, 3, 3])
    assert bool(jnp.isfinite(losses.supcon(z, labels)))
    assert float(losses.supcon(z, labels)) != pytest.approx(float(losses.supcon(z, jnp.arange(8))), abs=1e-3)

  def test_eight_devices_match_one(self):
    z = _random(0, (32, 2, 6))
    labels = jax.random.randint(jax.random.key(1), (32,), 0, 4)
    sharded = on_devices(lambda f, y, axis: losses.supcon(f, y, 0.1, 0.1, axis), z, labels)
    assert float(sharded) == pytest.approx(float(losses.supcon(z, labels, 0.1, 0.1)), abs=1e-5)


class TestNNCLR:

  def test_nearest_neighbour_picks_most_similar_support_row(self):
    support = jnp.array([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    z = jnp.array([[0.1, 5.0], [3.0, 0.2], [-2.0, -1.5]])
    np.testing.assert_allclose(losses.nearest_neighbour(z, support),
                               [[0.0, 1.0], [1.0, 0.0], [-0.70710677, -0.70710677]], atol=1e-6)

  def test_loss_hand_value(self):
    # nn_i = p_i orthonormal, T = 1: each row has its positive at 1 and one negative at 0.
    eye = jnp.eye(2)
    assert float(losses.nnclr_loss(eye, eye, temperature=1.0)) == pytest.approx(math.log(1 + 1 / math.e), abs=1e-6)

  def test_loss_eight_devices_match_one(self):
    nn, p = _random(0, (32, 6)), _random(1, (32, 6))
    sharded = on_devices(lambda a, b, axis: losses.nnclr_loss(a, b, 0.1, axis), nn, p)
    assert float(sharded) == pytest.approx(float(losses.nnclr_loss(nn, p, 0.1)), abs=1e-5)

  def test_enqueue_fills_from_the_global_batch(self):
    queue, z = jnp.zeros((64, 4)), _random(0, (16, 4))
    expected_queue, expected_pointer = losses.enqueue(queue, jnp.int32(32), z)
    np.testing.assert_allclose(expected_queue[32:48], z / jnp.linalg.norm(z, axis=1, keepdims=True), atol=1e-6)
    assert int(expected_pointer) == 48

    def local(z_local, axis):
      return losses.enqueue(queue, jnp.int32(32), z_local, axis)[0]
    np.testing.assert_allclose(on_devices(local, z), expected_queue, atol=1e-6)
    assert int(losses.enqueue(queue, jnp.int32(48), z)[1]) == 0    # wraps around


class TestMeanShift:

  def test_hand_value(self):
    # Bank of unit vectors; the target's 2 nearest are rows 0 and 1; the query sits on row 0.
    bank = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    value = losses.mean_shift_loss(jnp.array([[2.0, 0.0]]), jnp.array([[1.0, 0.9]]), bank, k=2)
    assert float(value) == pytest.approx(((2 - 2 * 1.0) + (2 - 2 * 0.0)) / 2, abs=1e-6)

  def test_k_one_with_target_in_bank_is_byol(self):
    q, t = _random(0, (6, 4)), _random(1, (6, 4))
    bank = jnp.concatenate([t / jnp.linalg.norm(t, axis=1, keepdims=True), _random(2, (10, 4)) * 0.01])
    assert float(losses.mean_shift_loss(q, t, bank, k=1)) == pytest.approx(float(losses.byol_loss(q, t)), abs=1e-5)


class TestWMSE:

  def test_whitening_gives_identity_covariance(self):
    x = _random(0, (64, 4)) @ jnp.array([[2.0, 1.0, 0, 0], [0, 1.0, 0, 0], [0, 0, 3.0, 0], [1.0, 0, 0, 0.5]]) + 4.0
    w = np.asarray(losses.whiten(x), np.float64)
    np.testing.assert_allclose(w.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(w.T @ w / (len(w) - 1), np.eye(4), atol=1e-3)

  def test_matches_reference_and_is_zero_for_identical_views(self):
    z1, z2 = _random(0, (32, 4)), _random(1, (32, 4))
    # Reference: numpy Cholesky whitening per sub-batch of 16, then 2 - 2 cos.
    def white(z):
      zc = z - z.mean(0)
      lower = np.linalg.cholesky(zc.T @ zc / (len(z) - 1))
      return np.linalg.solve(lower, zc.T).T
    a = np.concatenate([white(np.asarray(z1[i:i + 16], np.float64)) for i in (0, 16)])
    b = np.concatenate([white(np.asarray(z2[i:i + 16], np.float64)) for i in (0, 16)])
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert float(losses.wmse_loss(z1, z2, w_size=16)) == pytest.approx(float(np.mean(2 - 2 * cos)), abs=1e-4)
    assert float(losses.wmse_loss(z1, z1, w_size=16)) == pytest.approx(0.0, abs=1e-5)

  def test_eight_devices_match_one(self):
    z1, z2 = _random(0, (32, 4)), _random(1, (32, 4))
    sharded = on_devices(lambda a, b, axis: losses.wmse_loss(a, b, w_size=16, axis_name=axis), z1, z2)
    assert float(sharded) == pytest.approx(float(losses.wmse_loss(z1, z2, w_size=16)), abs=1e-5)
    key = jax.random.key(3)
    sharded = on_devices(lambda a, b, axis: losses.wmse_loss(a, b, 16, axis_name=axis, key=key, w_iter=3), z1, z2)
    assert float(sharded) == pytest.approx(float(losses.wmse_loss(z1, z2, 16, key=key, w_iter=3)), abs=1e-5)

  def test_w_iter_averages_passes_over_permuted_sub_batches(self):
    z1, z2 = _random(0, (32, 4)), _random(1, (32, 4))
    key = jax.random.key(5)
    # Each pass = the contiguous loss of the permuted batch; w_iter passes are averaged.
    passes = [losses.wmse_loss(z1[p], z2[p], 16)
              for p in (jax.random.permutation(jax.random.fold_in(key, i), 32) for i in range(3))]
    assert float(losses.wmse_loss(z1, z2, 16, key=key, w_iter=3)) == pytest.approx(float(np.mean(passes)), abs=1e-5)
    assert len({round(float(p), 5) for p in passes}) == 3           # different sub-batches, different values
    # One sub-batch of the whole batch: whitening is permutation-equivariant, so the permutation does not matter.
    assert float(losses.wmse_loss(z1, z2, 32, key=key, w_iter=2)) == pytest.approx(float(losses.wmse_loss(z1, z2, 32)),
                                                                             abs=1e-4)


class TestSwAV:

  def test_sinkhorn_equipartition(self):
    scores = jnp.tanh(_random(0, (12, 4)))
    q = losses.sinkhorn(scores, epsilon=0.5, iterations=50)
    np.testing.assert_allclose(q.sum(axis=1), 1.0, atol=1e-5)          # each sample: a distribution
    np.testing.assert_allclose(q.sum(axis=0), 12 / 4, atol=1e-2)       # each prototype: B / K samples

  def test_sinkhorn_three_iterations_by_hand(self):
    scores = jnp.array([[0.9, 0.1], [0.8, 0.3], [0.2, 0.7]])
    q = np.exp(np.asarray(scores, np.float64) / 0.05).T
    q /= q.sum()
    for _ in range(3):
      q /= q.sum(axis=1, keepdims=True); q /= 2
      q /= q.sum(axis=0, keepdims=True); q /= 3
    np.testing.assert_allclose(losses.sinkhorn(scores), (q * 3).T, atol=1e-5)

  def test_masked_rows_take_no_part(self):
    scores = jnp.tanh(_random(0, (6, 3)))
    padded = jnp.concatenate([jnp.tanh(_random(1, (4, 3))), scores])
    q = losses.sinkhorn(padded, weights=jnp.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1.0]))
    np.testing.assert_allclose(q[4:], losses.sinkhorn(scores), atol=1e-5)
    np.testing.assert_allclose(q[:4], 0.0)

  def test_swapped_prediction_by_hand(self):
    s1, s2 = jnp.tanh(_random(0, (6, 3))), jnp.tanh(_random(1, (6, 3)))
    q1, q2 = losses.sinkhorn(s1), losses.sinkhorn(s2)
    ce = lambda q, s: -jnp.mean(jnp.sum(q * jax.nn.log_softmax(s / 0.1, axis=-1), axis=-1))
    assert float(losses.swav_loss([s1, s2])) == pytest.approx(float((ce(q1, s2) + ce(q2, s1)) / 2), abs=1e-5)

  def test_eight_devices_match_one_with_queue(self):
    views = [jnp.tanh(_random(i, (16, 5))) for i in range(3)]
    queue = [jnp.tanh(_random(10 + i, (16, 5))) for i in range(2)]
    weights = jnp.ones((16,))
    expected = losses.swav_loss(views, queue_scores=queue, queue_weights=weights)

    def local(a, b, c, qa, qb, w, axis):
      return losses.swav_loss([a, b, c], queue_scores=[qa, qb], queue_weights=w, axis_name=axis)
    # Each device scores its slice of the queue, as the SwAV method does.
    assert float(on_devices(local, *views, *queue, weights)) == pytest.approx(float(expected), abs=1e-5)


class TestDINO:

  def test_hand_value(self):
    # Two classes, teacher with T_t = 1 and zero centre: targets softmax(t); one student view per teacher view.
    t = [jnp.array([[0.0, jnp.log(3.0)]]), jnp.array([[0.0, 0.0]])]
    s = [jnp.array([[0.0, 0.0]]), jnp.array([[jnp.log(3.0), 0.0]])]
    value = losses.dino_loss(s, t, jnp.zeros(2), student_temperature=1.0, teacher_temperature=1.0)
    # pair (teacher 0 -> student 1): targets (1/4, 3/4), student (3/4, 1/4); pair (1 -> 0): (1/2, 1/2), (1/2, 1/2)
    h01 = -(0.25 * math.log(0.75) + 0.75 * math.log(0.25))
    h10 = math.log(2.0)
    assert float(value) == pytest.approx((h01 + h10) / 2, abs=1e-5)

  def test_centre_is_subtracted_and_updated(self):
    t = [jnp.ones((4, 3)), 3 * jnp.ones((4, 3))]
    np.testing.assert_allclose(losses.dino_center(jnp.zeros(3), t, momentum=0.9), 0.1 * 2.0, atol=1e-6)
    s = [_random(0, (4, 3)), _random(1, (4, 3)), _random(2, (4, 3))]
    shifted = [x + 5.0 for x in t]
    np.testing.assert_allclose(losses.dino_loss(s, shifted, jnp.full(3, 5.0)), losses.dino_loss(s, t, jnp.zeros(3)),
                               atol=1e-5)

  def test_eight_devices_match_one(self):
    s = [_random(i, (16, 6)) for i in range(3)]
    t = [_random(10 + i, (16, 6)) for i in range(2)]
    c = _random(20, (6,))
    expected = losses.dino_loss(s, t, c, 0.1, 0.05)
    expected_center = losses.dino_center(c, t)
    sharded = on_devices(lambda a, b, d, e, f, axis: losses.dino_loss([a, b, d], [e, f], c, 0.1, 0.05, axis),
                         *s, *t)
    center = on_devices(lambda e, f, axis: losses.dino_center(c, [e, f], axis_name=axis), *t)
    assert float(sharded) == pytest.approx(float(expected), abs=1e-5)
    np.testing.assert_allclose(center, expected_center, atol=1e-6)


class TestMAE:
  @staticmethod
  def _official(pred, target, mask, norm_pix):
    """models_mae.forward_loss in NumPy: per-patch normalised target (unbiased variance), mean over pixels, mean
    over the removed patches."""
    if norm_pix:
      mean = target.mean(axis=-1, keepdims=True)
      var = target.var(axis=-1, keepdims=True, ddof=1)
      target = (target - mean) / (var + 1.e-6) ** .5
    loss = ((pred - target) ** 2).mean(axis=-1)
    return (loss * mask).sum() / mask.sum()

  def _inputs(self, n=8, length=16, dim=12):
    rng = np.random.default_rng(0)
    pred = rng.normal(size=(n, length, dim)).astype(np.float32)
    target = rng.uniform(size=(n, length, dim)).astype(np.float32)
    mask = np.stack([rng.permutation(length) < length * 3 // 4 for _ in range(n)]).astype(np.float32)
    return pred, target, mask

  @pytest.mark.parametrize("norm_pix", [True, False])
  def test_equals_the_official_forward_loss(self, norm_pix):
    pred, target, mask = self._inputs()
    value = losses.mae_loss(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask), norm_pix=norm_pix)
    assert float(value) == pytest.approx(float(self._official(pred, target, mask, norm_pix)), rel=1e-5)

  def test_kept_patches_get_no_gradient(self):
    pred, target, mask = self._inputs()
    grad = jax.grad(lambda p: losses.mae_loss(p, jnp.asarray(target), jnp.asarray(mask)))(jnp.asarray(pred))
    assert np.all(np.asarray(grad)[mask == 0] == 0) and np.abs(np.asarray(grad)[mask == 1]).sum() > 0

  def test_eight_devices_match_one(self):
    pred, target, mask = (jnp.asarray(a) for a in self._inputs(n=16))
    sharded = on_devices(lambda p, t, m, axis: losses.mae_loss(p, t, m, axis_name=axis), pred, target, mask)
    assert float(sharded) == pytest.approx(float(losses.mae_loss(pred, target, mask)), rel=1e-6)
