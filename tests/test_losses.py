import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.ops import losses
from helpers import on_devices


def _random(key, shape):
  return jax.random.normal(jax.random.key(key), shape)


def _nt_xent_reference(z1, z2, temperature):
  """Loop over the 2N anchors, straight from eq. 1 of the SimCLR paper."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z1)
  total = 0.0
  for i in range(2 * n):
    positive = (i + n) % (2 * n)
    sims = np.array([z[i] @ z[k] / temperature for k in range(2 * n)])
    denominator = sum(np.exp(sims[k]) for k in range(2 * n) if k != i)
    total += -np.log(np.exp(sims[positive]) / denominator)
  return total / (2 * n)


class TestNTXent:

  def test_hand_value(self):
    # Orthogonal unit vectors: each anchor has its positive at cos 1 and two negatives at cos 0.
    z = jnp.eye(2)
    assert float(losses.nt_xent(z, z, temperature=1.0)) == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)

  def test_matches_reference_loop(self):
    z1, z2 = _random(0, (6, 5)), _random(1, (6, 5))
    expected = _nt_xent_reference(np.asarray(z1), np.asarray(z2), 0.5)
    assert float(losses.nt_xent(z1, z2, temperature=0.5)) == pytest.approx(float(expected), abs=1e-5)

  def test_invariances(self):
    z1, z2 = _random(0, (8, 4)), _random(1, (8, 4))
    base = losses.nt_xent(z1, z2)
    assert float(losses.nt_xent(z2, z1)) == pytest.approx(float(base), abs=1e-5)               # swap the views
    perm = jax.random.permutation(jax.random.key(2), 8)
    assert float(losses.nt_xent(z1[perm], z2[perm])) == pytest.approx(float(base), abs=1e-5)   # reorder the pairs
    assert float(losses.nt_xent(3.0 * z1, 0.5 * z2)) == pytest.approx(float(base), abs=1e-5)   # cosine: scale-free

  def test_gradient_is_finite(self):
    grads = jax.grad(lambda a, b: losses.nt_xent(a, b), argnums=(0, 1))(_random(0, (4, 3)), _random(1, (4, 3)))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)

  def test_eight_devices_match_one(self):
    z1, z2 = _random(0, (32, 6)), _random(1, (32, 6))
    sharded = on_devices(lambda a, b, axis: losses.nt_xent(a, b, 0.2, axis_name=axis), z1, z2)
    assert float(sharded) == pytest.approx(float(losses.nt_xent(z1, z2, 0.2)), abs=1e-5)

  def test_eight_device_gradient_matches_one(self):
    z1, z2 = _random(0, (16, 6)), _random(1, (16, 6))
    full = jax.grad(lambda a: losses.nt_xent(a, z2, 0.2))(z1)

    def local_grad(a, b, axis):
      g = jax.grad(lambda x: losses.nt_xent(x, b, 0.2, axis_name=axis))(a)
      # Every device holds the global loss, so each local gradient is D x the global one: the trainer's pmean
      # of parameter gradients over the D devices gives exactly the gradient of the global loss.
      return jax.lax.all_gather(g, axis, tiled=True) / jax.lax.psum(1, axis)

    np.testing.assert_allclose(on_devices(local_grad, z1, z2), full, atol=1e-5)


class TestBYOL:

  def test_hand_value(self):
    p = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    z = jnp.array([[0.0, 3.0], [2.0, 0.0]])      # cos 0 -> 2; cos 1 -> 0
    assert float(losses.byol_loss(p, z)) == pytest.approx(1.0, abs=1e-6)

  def test_scale_invariant(self):
    p, z = _random(0, (8, 4)), _random(1, (8, 4))
    assert float(losses.byol_loss(5.0 * p, 0.1 * z)) == pytest.approx(float(losses.byol_loss(p, z)), abs=1e-5)

  def test_gradient_is_finite(self):
    assert bool(jnp.all(jnp.isfinite(jax.grad(losses.byol_loss)(_random(0, (4, 3)), _random(1, (4, 3))))))

  def test_eight_devices_match_one(self):
    p, z = _random(0, (16, 5)), _random(1, (16, 5))
    sharded = on_devices(lambda a, b, axis: losses.byol_loss(a, b, axis_name=axis), p, z)
    assert float(sharded) == pytest.approx(float(losses.byol_loss(p, z)), abs=1e-5)


class TestVICReg:

  def test_hand_value_covariance(self):
    # Centred; unbiased variances 2 and 8 (stds > 1: no variance term); covariance 4 off the diagonal.
    z = jnp.array([[1.0, 2.0], [-1.0, -2.0]])
    loss, terms = losses.vicreg_loss(z, z, return_terms=True)
    assert float(terms["invariance"]) == pytest.approx(0.0)
    assert float(terms["variance"]) == pytest.approx(0.0)
    assert float(terms["covariance"]) == pytest.approx(2 * (2 * 4.0 ** 2) / 2)   # two branches, (4^2 + 4^2) / D each
    assert float(loss) == pytest.approx(32.0, abs=1e-4)

  def test_hand_value_variance_and_invariance(self):
    z1 = jnp.array([[0.5, 0.0], [-0.5, 0.0]])      # variances 0.5 and 0, no covariance
    z2 = z1 + jnp.array([[1.0, 0.0], [1.0, 0.0]])  # shifted: same statistics, MSE (1 + 0 + 1 + 0) / 4
    loss, terms = losses.vicreg_loss(z1, z2, return_terms=True)
    hinge = (max(0.0, 1 - math.sqrt(0.5 + 1e-4)) + max(0.0, 1 - math.sqrt(1e-4))) / 2
    assert float(terms["invariance"]) == pytest.approx(0.5)
    assert float(terms["variance"]) == pytest.approx(float(hinge), abs=1e-6)       # mean of the two (equal) branches
    assert float(terms["covariance"]) == pytest.approx(0.0)
    assert float(loss) == pytest.approx(float(25 * 0.5 + 25 * hinge), abs=1e-4)

  def test_swap_and_permutation_invariance(self):
    z1, z2 = _random(0, (16, 6)), _random(1, (16, 6))
    base = losses.vicreg_loss(z1, z2)
    assert float(losses.vicreg_loss(z2, z1)) == pytest.approx(float(base), rel=1e-5)
    perm = jax.random.permutation(jax.random.key(3), 16)
    assert float(losses.vicreg_loss(z1[perm], z2[perm])) == pytest.approx(float(base), rel=1e-5)

  def test_gradient_is_finite(self):
    g = jax.grad(losses.vicreg_loss, argnums=(0, 1))(_random(0, (8, 4)), _random(1, (8, 4)))
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in g)

  def test_eight_devices_match_one(self):
    z1, z2 = _random(0, (32, 6)), 2.0 * _random(1, (32, 6)) + 1.0
    sharded = on_devices(lambda a, b, axis: losses.vicreg_loss(a, b, axis_name=axis), z1, z2)
    assert float(sharded) == pytest.approx(float(losses.vicreg_loss(z1, z2)), rel=1e-5)
