"""The masked self-distillation losses (iBOT's patch loss, DINOv2's KoLeo and Sinkhorn-Knopp centring, I-JEPA's
smooth L1): equal to lightly's / PyTorch's values (tests/data/lightly_losses.npz, written by
benchmarks/peers/lightly_loss_references.py), and 8 devices equal to 1."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.ops import losses
from tests.helpers import on_devices

REFERENCES = np.load(pathlib.Path(__file__).parent / "data" / "lightly_losses.npz")


def _ibot(student, ref=REFERENCES):
  targets = losses.centred_softmax(jnp.asarray(ref["ibot_teacher"]), ref["ibot_center"],
                                   float(ref["ibot_teacher_temperature"]))
  return losses.ibot_patch_loss(student, targets, jnp.asarray(ref["ibot_mask"], jnp.float32),
                                float(ref["ibot_student_temperature"]))


def test_ibot_patch_loss_equals_lightlys():
  value, grad = jax.value_and_grad(_ibot)(jnp.asarray(REFERENCES["ibot_student"]))
  np.testing.assert_allclose(value, REFERENCES["ibot_loss"], rtol=1e-5)
  np.testing.assert_allclose(grad, REFERENCES["ibot_grad"], rtol=1e-4, atol=1e-7)


def test_ibot_patch_loss_reads_only_masked_patches():
  student = jnp.asarray(REFERENCES["ibot_student"])
  mask = REFERENCES["ibot_mask"]
  changed = student.at[~mask].set(100.0)                   # unmasked patches do not count
  np.testing.assert_allclose(_ibot(changed), _ibot(student), rtol=1e-6)
  grad = jax.grad(_ibot)(student)
  assert np.all(np.asarray(grad)[~mask] == 0) and np.all(np.asarray(grad)[0] == 0)


def test_koleo_equals_lightlys():
  value, grad = jax.value_and_grad(losses.koleo_loss)(jnp.asarray(REFERENCES["koleo_features"]))
  np.testing.assert_allclose(value, REFERENCES["koleo_loss"], rtol=1e-5)
  np.testing.assert_allclose(grad, REFERENCES["koleo_grad"], rtol=1e-4, atol=1e-6)


def test_koleo_spread_features_cost_less():
  rng = np.random.default_rng(1)
  spread = rng.normal(size=(32, 16)).astype(np.float32)
  clustered = (spread[:1] + 0.05 * spread).astype(np.float32)
  assert losses.koleo_loss(spread) < losses.koleo_loss(clustered)


def _layer_norm(x, eps=1e-5):
  mean = x.mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps)


def test_ijepa_loss_equals_torchs_smooth_l1_on_layer_normed_targets():
  targets = _layer_norm(REFERENCES["ijepa_tokens"])
  np.testing.assert_allclose(targets, REFERENCES["ijepa_targets"], atol=1e-5)
  value = losses.ijepa_loss(jnp.asarray(REFERENCES["ijepa_predictions"]), jnp.asarray(REFERENCES["ijepa_targets"]))
  np.testing.assert_allclose(value, REFERENCES["ijepa_loss"], rtol=1e-5)


def test_sinkhorn_targets_equipartition_over_the_taking_part():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(24, 6)).astype(np.float32)
  weights = (rng.uniform(size=24) < 0.5).astype(np.float32)
  q = np.asarray(losses.sinkhorn_targets(logits, 0.5, iterations=50, weights=weights))
  taking_part = q[weights == 1]
  np.testing.assert_allclose(taking_part.sum(1), 1.0, atol=1e-5)
  np.testing.assert_allclose(taking_part.sum(0), weights.sum() / 6, rtol=1e-2)


def test_dino_loss_is_the_distillation_of_centred_targets():
  rng = np.random.default_rng(3)
  student = [rng.normal(size=(5, 7)).astype(np.float32) for _ in range(4)]
  teacher = [rng.normal(size=(5, 7)).astype(np.float32) for _ in range(2)]
  center = rng.normal(size=(7,)).astype(np.float32)
  targets = [losses.centred_softmax(t, center, 0.04) for t in teacher]
  np.testing.assert_allclose(losses.dino_loss(student, teacher, center, 0.1, 0.04),
                             losses.distillation_loss(student, targets, 0.1), rtol=1e-6)


@pytest.mark.parametrize("name", ["ibot", "koleo", "ijepa", "sinkhorn"])
def test_eight_devices_equal_one(name):
  rng = np.random.default_rng(4)
  if name == "ibot":
    student, teacher = rng.normal(size=(2, 16, 5, 8)).astype(np.float32)
    mask = (rng.uniform(size=(16, 5)) < 0.5).astype(np.float32)
    fn = lambda s, t, m, axis=None: losses.ibot_patch_loss(s, losses.centred_softmax(t, 0.0, 0.1), m, 0.1, axis)
    arrays = (student, teacher, mask)
  elif name == "koleo":
    fn = lambda x, axis=None: losses.koleo_loss(x, axis_name=axis)
    arrays = (rng.normal(size=(16, 6)).astype(np.float32),)
  elif name == "ijepa":
    fn = lambda p, t, axis=None: losses.ijepa_loss(p, t, axis)
    arrays = tuple(rng.normal(scale=2.0, size=(2, 16, 3, 4)).astype(np.float32))
  else:
    weights = (rng.uniform(size=16) < 0.6).astype(np.float32)
    # The targets of one device's rows, as a loss-like scalar so one value comes back.
    fn = lambda x, w, axis=None: jnp.sum(losses.sinkhorn_targets(x, 0.3, weights=w, axis_name=axis) ** 2) \
        if axis is None else jax.lax.psum(jnp.sum(losses.sinkhorn_targets(x, 0.3, weights=w, axis_name=axis) ** 2), axis)
    arrays = (rng.normal(size=(16, 5)).astype(np.float32), weights)
  single = fn(*arrays)
  sharded = on_devices(lambda *xs: fn(*xs[:-1], axis=xs[-1]), *arrays)
  np.testing.assert_allclose(sharded, single, rtol=1e-5)
  grad_single = jax.grad(lambda a: fn(a, *arrays[1:]))(arrays[0])
  grad_sharded = on_devices(lambda *xs: jax.lax.all_gather(
      jax.grad(lambda a: fn(a, *xs[1:-1], axis=xs[-1]))(xs[0]), xs[-1], tiled=True) / 8, *arrays)
  if name != "sinkhorn":       # Sinkhorn's targets carry no gradient
    np.testing.assert_allclose(grad_sharded, grad_single, rtol=1e-4, atol=1e-7)
