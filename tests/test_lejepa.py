"""LeJEPA against a transcription of the authors' code (rbalestr-lab/lejepa: ``MINIMAL.md``'s ``SIGReg`` and
training step, the library's ``EppsPulley``): SIGReg and the whole loss on the same projections and directions
(values and gradients), the method's loss on a model, 8 devices against 1, and the statistic's meaning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.engine import train_step
from jaxssl.methods import lejepa
from jaxssl.methods.base import StepInputs, Variables
from jaxssl.ops import losses
from helpers import assert_refused, on_devices
from tiny import tiny_config


def _official_sigreg(proj, A, knots=17):
  """MINIMAL.md's ``SIGReg.forward`` with its random matrix ``A`` given: proj [V, N, K] -> a scalar."""
  t = jnp.linspace(0, 3, knots)
  dt = 3 / (knots - 1)
  weights = jnp.full((knots,), 2 * dt).at[jnp.array([0, -1])].set(dt)
  window = jnp.exp(-jnp.square(t) / 2.0)
  phi, weights = window, weights * window
  x_t = (proj @ A)[..., None] * t
  err = jnp.square(jnp.cos(x_t).mean(-3) - phi) + jnp.square(jnp.sin(x_t).mean(-3))
  statistic = (err @ weights) * proj.shape[-2]
  return statistic.mean()


def _official_loss(proj, A, lamb, num_global):
  """MINIMAL.md's step after the network, with the paper's centres (the global views' mean; MINIMAL.md's V
  views are all global): ``inv_loss``, ``sigreg_loss``, their mix."""
  inv_loss = jnp.square(proj[:num_global].mean(0) - proj).mean()
  sigreg_loss = _official_sigreg(proj, A)
  return sigreg_loss * lamb + inv_loss * (1 - lamb)


def _directions(dim, num, seed=0):
  A = np.random.default_rng(seed).normal(size=(dim, num)).astype(np.float32)
  return jnp.asarray(A / np.linalg.norm(A, axis=0))


@pytest.mark.parametrize("num_global", [4, 2])
def test_the_loss_is_the_authors_in_value_and_gradient_and_on_eight_devices(num_global):
  """All four views global (MINIMAL.md), or two global and two local (the paper's multi-crop)."""
  rng = np.random.default_rng(1)
  proj = jnp.asarray(rng.normal(size=(4, 16, 8)) * 1.5 + 0.3, jnp.float32)            # [V, N, K]
  A = _directions(8, 32)
  ours = lambda p: losses.lejepa_loss(list(p), num_global, A, 0.02)[0]
  official = lambda p: _official_loss(p, A, 0.02, num_global)
  np.testing.assert_allclose(float(ours(proj)), float(official(proj)), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(jax.grad(ours)(proj)), np.asarray(jax.grad(official)(proj)), rtol=1e-4,
                             atol=1e-7)
  _, prediction, regulariser = losses.lejepa_loss(list(proj), num_global, A, 0.02)
  np.testing.assert_allclose(float(regulariser), float(_official_sigreg(proj, A)), rtol=1e-5)
  # 8 devices hold the global batch: the characteristic function's means and N are the global batch's.
  per_device = lambda *views, axis: jnp.stack(losses.lejepa_loss(list(views), num_global, A, 0.02, axis_name=axis))
  sharded = on_devices(lambda a, b, c, d, axis: per_device(a, b, c, d, axis=axis), *proj)
  np.testing.assert_allclose(np.asarray(sharded), [float(ours(proj)), float(prediction), float(regulariser)],
                             rtol=1e-5)


def test_sigreg_is_small_for_gaussian_embeddings_and_large_for_collapsed_or_shifted_ones():
  rng = np.random.default_rng(2)
  A = losses.random_directions(jax.random.key(0), 16, 64)
  gaussian = jnp.asarray(rng.normal(size=(1024, 16)), jnp.float32)
  small = float(losses.sigreg(gaussian, A))
  assert small < 2.0                          # about its mean under the null, which N times the error keeps O(1)
  assert float(losses.sigreg(0.05 * gaussian, A)) > 100 * small                # collapsed
  assert float(losses.sigreg(2.0 * gaussian, A)) > 100 * small                 # too spread
  assert float(losses.sigreg(gaussian + 2.0, A)) > 100 * small                 # off-centre
  np.testing.assert_allclose(np.linalg.norm(np.asarray(A), axis=0), 1.0, rtol=1e-5)


def test_the_methods_loss_is_the_authors_on_its_network_with_this_steps_directions():
  config = tiny_config("lejepa")
  trainer = train_step.build(config, total_steps=3, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  rng = np.random.default_rng(3)
  recipes = trainer.method.recipes(config)
  assert len(recipes) == config.method.num_global_views + config.augment.num_local_crops
  views = [jnp.asarray(rng.normal(size=(16, r.size, r.size, 1)), jnp.float32) for r in recipes]
  step = jnp.asarray(7, jnp.int32)
  inputs = StepInputs(views, jax.random.split(jax.random.key(1), 16), jnp.zeros((16,), jnp.int32), step,
                      state.method_state, None)
  out = trainer.method.loss(trainer.model, Variables(state.params, state.batch_stats), None, inputs)

  def project(x):
    return trainer.model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=True,
                               mutable=["batch_stats"])[0][1]

  proj = jnp.stack([project(v) for v in views])
  m = config.method
  A = losses.random_directions(jax.random.fold_in(jax.random.key(config.seed), 7), m.proj_dim, m.num_slices)
  expected = _official_loss(proj, A, m.lam, m.num_global_views)
  np.testing.assert_allclose(float(out.loss), float(expected), rtol=1e-5)
  assert set(out.metrics) == {"loss", "prediction_loss", "sigreg_loss"}
  # Another step draws other directions.
  other = trainer.method.loss(trainer.model, Variables(state.params, state.batch_stats), None,
                              inputs._replace(step=jnp.asarray(8, jnp.int32)))
  assert float(other.metrics["sigreg_loss"]) != float(out.metrics["sigreg_loss"])
  assert float(other.metrics["prediction_loss"]) == pytest.approx(float(out.metrics["prediction_loss"]), rel=1e-6)


def test_recipes_and_config_checks():
  config = tiny_config("lejepa")
  config.augment.num_local_crops, config.augment.local_size = 2, 8
  views = lejepa.recipes(config)
  assert [v.size for v in views] == [16, 16, 8, 8]
  assert all(v.blur_prob == 0.5 and v.solarize_prob == 0.2 and v.brightness == 0.4 for v in views)
  assert views[0].crop_scale == (0.3, 1.0) and views[2].crop_scale == (0.05, 0.3)
  assert_refused(config, {"method.knots": 16}, "method.knots=16: must be an odd integer of at least 3")
  assert_refused(config, {"method.knots": 17, "method.lam": 1.5}, "method.lam=1.5")
