"""Adding a method touches no trainer code: a method defined here, registered with one line, is validated,
trained through ``train.run`` and gives the same step on 8 devices as on 1. Two kinds: a joint-embedding method
through ``joint_embedding.method``, and a masked one that runs its own model on the kept patches."""

import types

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl import methods, train
from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.models.vit import patchify
from jaxssl.ops import losses, masking
from jaxssl.schema import validate
from tiny import tiny_config
from test_train import _assert_trees_close, _batches, _run_shard_map


def _make(config) -> base.Method:
  """A toy self-distillation method using every part of the contract: an EMA target with its own schedule,
  a predictor, method state (a running mean of the target's projections, over the global batch), the step
  (the weight of a centring term grows with it), labels ignored."""
  m = config.method

  def init_state(key, config):
    return {"mean": jnp.zeros((m.proj_dim,), jnp.float32)}

  def loss(online, target, method_state, labels, step, axis_name):
    p1, p2 = online.predictions
    z1, z2 = (jax.lax.stop_gradient(z) for z in target.projections)
    align = losses.byol_loss(p1, z2, axis_name) + losses.byol_loss(p2, z1, axis_name)
    weight = m.centre_weight * jnp.minimum(step / 2.0, 1.0)
    centred = jnp.mean((p1 - method_state["mean"]) ** 2)
    if axis_name is not None:
      centred = jax.lax.pmean(centred, axis_name)
    value = align + weight * centred
    return value, {"loss": value, "centre_weight": weight}

  def update_state(method_state, online, target, step, axis_name):
    batch_mean = jnp.mean(target.projections[0], axis=0)
    if axis_name is not None:
      batch_mean = jax.lax.pmean(batch_mean, axis_name)
    return {"mean": 0.9 * method_state["mean"] + 0.1 * batch_mean}

  heads = lambda config, axis_name, dtype: joint_embedding.mlp_heads(config, axis_name, dtype, with_predictor=True)
  return joint_embedding.method("toy", heads, base.byol_pair, loss, ema=base.ema_schedule(m.base_momentum),
                                init_state=init_state, update_state=update_state)


def _check(config) -> None:
  joint_embedding.check_heads(config)
  base.check_momentum(config)
  config_checks.in_range(config, "method.centre_weight", 0.0, 10.0)


TOY = types.SimpleNamespace(
    make=_make,
    defaults=lambda: {"proj_hidden_dims": (64,), "proj_dim": 32, "pred_hidden_dims": (64,),
                      "base_momentum": 0.99, "centre_weight": 0.5},
    check=_check,
    small=lambda batch_size: joint_embedding.small_heads(with_predictor=True),
)


@pytest.fixture
def toy():
  methods.register("toy", TOY)                 # the one registry line a new method needs
  yield "toy"
  methods._REGISTRY.pop("toy")


def test_registration_needs_the_whole_contract():
  with pytest.raises(TypeError, match=r"lacks check \(see"):
    methods.register("half", types.SimpleNamespace(make=_make, defaults=TOY.defaults))


def test_new_method_is_validated_by_its_own_check(toy):
  config = tiny_config(toy)
  validate.validate(config, num_devices=8)
  config.method.centre_weight = -1.0
  with pytest.raises(validate.ConfigError, match=r"^config.method.centre_weight=-1.0: must be in \[0, 10\]$"):
    validate.validate(config, num_devices=8)


@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
def test_new_method_trains_the_same_on_eight_devices_as_on_one(toy, tmp_path):
  config = tiny_config(toy)
  batches = _batches(config, 3)
  state8, losses8, _ = _run_shard_map(config, batches, 8)
  state1, losses1, _ = _run_shard_map(config, batches, 1)
  assert all(np.isfinite(losses8))
  np.testing.assert_allclose(losses8, losses1, atol=1e-4)
  _assert_trees_close(state8.params, state1.params, 1e-4)
  _assert_trees_close(state8.ema_params, state1.ema_params, 1e-4)
  _assert_trees_close(state8.method_state, state1.method_state, 1e-5)
  assert float(np.abs(state8.method_state["mean"]).sum()) > 0        # the trainer ran update_state

  config.eval.at_end = config.eval.knn_at_init = False
  results = train.run(config, str(tmp_path / "run"))                  # the whole loop: validate, train, save
  assert results["steps"] == 3 and np.isfinite(results["final_loss"])


# A masked method of the new kind: it owns its forward pass. Half of each view's patches are removed (masks from
# the per-example keys), the ViT encoder runs on the rest, and a linear head on the mean kept token predicts the
# mean pixel of every patch; the loss is the squared error on the removed patches. No EMA, no method state.


class _MeanPixelModel(nn.Module):
  encoder: nn.Module

  @nn.compact
  def __call__(self, images, masks=None, train=False):
    num_patches = (images.shape[1] // self.encoder.patch_size) ** 2
    keep = None if masks is None else masks.ids_keep
    tokens = self.encoder.tokens(images, keep_ids=keep)
    return nn.Dense(num_patches, name="pixel_head")(tokens.patches.mean(axis=1))

  def embed(self, images):
    return self.encoder(images, train=False)


def _make_masked(config) -> base.Method:
  m = config.method
  patch = config.model.patch_size

  def loss(model, online, target, inputs):
    images = inputs.views[0]
    patch_means = patchify(images, patch).mean(axis=-1)               # [N, L]
    masks = masking.random_masking(masking.uniform_noise(base.stream(inputs.keys, 0), patch_means.shape[1]),
                                   m.mask_ratio)
    predicted = model.apply({"params": online.params}, images, masks)
    value = losses.mae_loss(predicted[..., None], patch_means[..., None], masks.mask, norm_pix=False,
                            axis_name=inputs.axis_name)
    return base.LossOutput(value, {"loss": value}, online.batch_stats)

  return base.Method(name="toy_masked", make_model=lambda config, encoder, axis_name, dtype: _MeanPixelModel(encoder),
                     recipes=base.crop_and_flip, loss=loss, no_online_probe="the encoder sees half the patches")


def _check_masked(config) -> None:
  config_checks.in_range(config, "method.mask_ratio", 0.0, 1.0, closed_high=False)


TOY_MASKED = types.SimpleNamespace(
    make=_make_masked, defaults=lambda: {"mask_ratio": 0.5}, check=_check_masked,
    small=lambda batch_size: {"model.encoder": "vit_micro", "model.patch_size": 4, "optim.name": "adamw",
                              "optim.base_lr": 1e-3, "eval.online_probe": False})


@pytest.fixture
def toy_masked():
  methods.register("toy_masked", TOY_MASKED)
  yield "toy_masked"
  methods._REGISTRY.pop("toy_masked")


def test_a_masked_method_of_the_new_kind_trains_the_same_on_eight_devices_as_on_one(toy_masked, tmp_path):
  config = tiny_config(toy_masked)
  validate.validate(config, num_devices=8)
  batches = _batches(config, 3)
  state8, losses8, _ = _run_shard_map(config, batches, 8)
  state1, losses1, _ = _run_shard_map(config, batches, 1)
  assert all(np.isfinite(losses8)) and losses8[0] != losses8[1]
  np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
  _assert_trees_close(state8.params, state1.params, 1e-5)
  assert set(state8.params) == {"encoder", "pixel_head"}
  config.eval.knn_at_init = False
  results = train.run(config, str(tmp_path / "run"))                  # kNN on the full images at the end
  assert results["steps"] == 3 and 0.0 <= results["knn_accuracy"] <= 1.0
