"""MSN: the loss against a transcription of the official ``init_msn_loss`` (values and gradients) and PMSN's
prior against lightly's, the method's pieces (one patch drop per group, the focal views as one BatchNorm batch,
the EMA target without prototypes), the official schedules, 8 devices = 1, the checks."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import assert_refused
from jaxssl.methods import msn
from jaxssl.methods.base import Variables
from jaxssl.models.vit import ViT
from jaxssl.ops import losses, optim
from jaxssl.schema import validate
from test_train import _eight_devices_as_one
from tiny import loss_inputs, tiny_config


# --- a transcription of the official loss (src/losses.py), in jnp --------------------------------------------

def _distributed_sinkhorn(q, num_itr=3):
  q = q.T
  b, k = q.shape[1], q.shape[0]
  q = q / jnp.sum(q)
  for _ in range(num_itr):
    q = q / jnp.sum(q, axis=1, keepdims=True) / k
    q = q / jnp.sum(q, axis=0, keepdims=True) / b
  return (q * b).T


def _official_msn_loss(anchor_views, target_views, prototypes, num_views, tau=0.1, T=0.25, use_sinkhorn=True,
                       me_max=True):
  proto_labels = jnp.eye(prototypes.shape[0])
  normalize = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  snn = lambda query, supports: jax.nn.softmax(normalize(query) @ normalize(supports).T / tau, axis=1) @ proto_labels
  probs = snn(anchor_views, prototypes)
  targets = snn(target_views, prototypes) ** (1.0 / T)
  targets = targets / jnp.sum(targets, axis=1, keepdims=True)
  if use_sinkhorn:
    targets = _distributed_sinkhorn(targets)
  targets = jax.lax.stop_gradient(jnp.concatenate([targets for _ in range(num_views)], axis=0))
  loss = jnp.mean(jnp.sum(jnp.log(probs ** (-targets)), axis=1))
  rloss = 0.0
  if me_max:
    avg_probs = jnp.mean(probs, axis=0)
    rloss = -jnp.sum(jnp.log(avg_probs ** (-avg_probs))) + math.log(float(len(avg_probs)))
  return loss + rloss


@pytest.mark.parametrize("sinkhorn", [3, 0])
def test_msn_loss_equals_the_official_loss(sinkhorn):
  rng = np.random.default_rng(0)
  anchors = jnp.asarray(rng.normal(size=(3 * 8, 16)), jnp.float32)
  targets = jnp.asarray(rng.normal(size=(8, 16)), jnp.float32)
  prototypes = jnp.asarray(rng.uniform(-0.25, 0.25, size=(32, 16)), jnp.float32)
  ours = lambda a, p: losses.msn_loss(a, targets, p, 0.1, 0.25, sinkhorn, 1.0)[0]
  official = lambda a, p: _official_msn_loss(a, targets, p, 3, use_sinkhorn=sinkhorn > 0)
  np.testing.assert_allclose(ours(anchors, prototypes), official(anchors, prototypes), rtol=1e-5)
  for argnum in (0, 1):
    np.testing.assert_allclose(jax.grad(ours, argnum)(anchors, prototypes),
                               jax.grad(official, argnum)(anchors, prototypes), rtol=1e-4, atol=1e-7)


def test_pmsn_prior_is_lightlys_power_law_and_its_kl():
  mean_probs = jax.nn.softmax(jnp.asarray(np.random.default_rng(1).normal(size=(10,)), jnp.float32))
  k = np.arange(1, 11, dtype=np.float64)
  prior = k ** -0.25 / np.sum(k ** -0.25)                         # lightly's _power_law_distribution
  np.testing.assert_allclose(losses.power_law_prior(10, 0.25), prior, rtol=1e-6)
  kl = np.sum(prior * (np.log(prior) - np.log(np.asarray(mean_probs))))   # F.kl_div(log q, p, reduction="sum")
  anchors = jnp.eye(10)
  _, metrics = losses.msn_loss(anchors, anchors, jnp.eye(10), prior="power_law", sinkhorn_iterations=0)
  mean = np.asarray(jax.nn.softmax(np.eye(10) / 0.1, axis=-1).mean(0))
  np.testing.assert_allclose(metrics["me_max"], np.sum(prior * (np.log(prior) - np.log(mean))), rtol=1e-5)
  assert kl > 0


# --- the method ----------------------------------------------------------------------------------------------

_loss_inputs = loss_inputs


def test_msn_loss_is_the_official_computation_on_the_networks_outputs():
  config = tiny_config("msn")
  config.method.group_size = 4
  trainer, state, inputs = _loss_inputs(config)
  m, model = config.method, trainer.model
  online, target = Variables(state.params, state.batch_stats), Variables(state.ema_params, state.ema_batch_stats)
  out = trainer.method.loss(model, online, target, inputs)
  # One kept set per group of 4: 13 of 16 patches (floor(16 x 0.85)).
  keep = np.asarray(msn.kept_patches(inputs.keys, 16, m.patch_drop, 4))
  assert keep.shape == (8, 13) and (keep[:4] == keep[0]).all() and (keep[4:] == keep[4]).all()
  assert not (keep[0] == keep[4]).all()
  # Recomputed: the anchor view with those patches and the focal views as one BatchNorm batch, through the head.
  enc = lambda x, ids=None: model.encoder.apply({"params": state.params["encoder"]}, x, keep_ids=ids,
                                                method=ViT.tokens).cls
  head = lambda h: model.projector.apply({"params": state.params["projector"],
                                          "batch_stats": state.batch_stats["projector"]}, h, True,
                                         mutable=["batch_stats"])[0]
  anchors = jnp.concatenate([head(enc(inputs.views[1], jnp.asarray(keep))),
                             head(jnp.concatenate([enc(x) for x in inputs.views[2:]]))])
  targets = msn.teacher_embeddings(model, target, inputs.views[0])
  expected = _official_msn_loss(anchors, targets, state.params["prototypes"], 3)
  np.testing.assert_allclose(out.loss, expected, rtol=1e-5)
  # Each focal view through the head alone would have given other BatchNorm statistics, another loss.
  apart = jnp.concatenate([head(enc(inputs.views[1], jnp.asarray(keep)))] + [head(enc(x)) for x in inputs.views[2:]])
  assert abs(float(_official_msn_loss(apart, targets, state.params["prototypes"], 3)) - float(expected)) > 1e-5
  assert set(state.ema_params) == {"encoder", "projector"}               # the prototypes have no EMA copy


@pytest.mark.slow
@pytest.mark.parametrize("group_size,prior", [(0, "uniform"), (2, "power_law")])
def test_msn_trains_the_same_on_eight_devices_as_on_one(group_size, prior):
  config = tiny_config("msn")
  config.method.group_size, config.method.prior = group_size, prior
  state8, state1 = _eight_devices_as_one(config)


def _official_warmup_cosine(step, warmup_steps, start_lr, ref_lr, T_max, final_lr):
  """``WarmupCosineSchedule.step`` (src/utils.py): the value set by its ``step``-th call."""
  if step < warmup_steps:
    return start_lr + step / max(1, warmup_steps) * (ref_lr - start_lr)
  progress = (step - warmup_steps) / max(1, T_max - warmup_steps)
  return max(final_lr, final_lr + (ref_lr - final_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def test_msn_schedules_are_the_officials():
  config = tiny_config("msn")
  config.train.batch_size, config.optim.warmup_steps = 1024, 15
  total = 100
  lr = optim.learning_rate_schedule(config, total)
  wd = optim.weight_decay_schedule(config, total)
  # The official scheduler is stepped before each update: update c (from 0) runs at its (c + 1)-th value; optax
  # counts from 0, so jaxssl's step c + 1 is the official update c (one step earlier throughout, as DINO's).
  for c in (1, 7, 15, 40, 99):
    np.testing.assert_allclose(lr(c), _official_warmup_cosine(c, 15, 2e-4, 1e-3, int(1.25 * total), 1e-6),
                               rtol=1e-5)
    official_wd = 0.4 + (0.04 - 0.4) * 0.5 * (1.0 + math.cos(math.pi * c / int(1.25 * total)))
    np.testing.assert_allclose(wd(c), official_wd, rtol=1e-5)
  assert float(lr(total)) > 1e-4                 # the run ends at 80% of the cosine, above the floor
  tau = msn.ema_schedule(0.996, 1.25)
  np.testing.assert_allclose(tau(40, total), 0.996 + 0.004 * 40 / 125, rtol=1e-7)


def test_msn_clips_the_encoder_and_not_the_prototypes():
  config = tiny_config("msn")
  config.optim.weight_decay = config.optim.weight_decay_end = 0.0
  params = {"encoder": {"w": jnp.zeros((2, 2))}, "projector": {"w": jnp.zeros((2,))}, "prototypes": jnp.zeros((2, 2))}
  grads = {"encoder": {"w": jnp.full((2, 2), 10.0)}, "projector": {"w": jnp.full((2,), 10.0)},
           "prototypes": jnp.full((2, 2), 10.0)}
  config.optim.name, config.optim.rules = "sgd", ()
  config.optim.momentum, config.optim.warmup_steps, config.optim.min_lr = 0.0, 0, 0.0
  tx = optim.make_optimizer(config, total_steps=10)
  updates, _ = tx.update(grads, tx.init(params), params)
  lr = float(optim.learning_rate_schedule(config, 10)(0))
  np.testing.assert_allclose(updates["encoder"]["w"], -lr * 10.0 * 3.0 / (np.sqrt(6 * 100) + 1e-6), rtol=1e-4)
  np.testing.assert_allclose(updates["prototypes"], -lr * 10.0, rtol=1e-6)


def test_msn_config_checks():
  validate.validate(tiny_config("msn"), num_devices=8)
  cases = [({"model.encoder": "small_resnet"}, "model.encoder", "MSN drops patch tokens"),
           ({"model.pool": "mean"}, "model.pool", "MSN embeds the class token"),
           ({"model.pos_embed": "rope"}, "model.pos_embed", "RoPE here rotates"),
           ({"method.prior": "zipf"}, "method.prior", "must be one of"),
           ({"method.patch_drop": 1.0}, "method.patch_drop", ""),
           ({"method.group_size": 3}, "method.group_size", "must divide that"),
           ({"optim.warmup_from": 1.0}, "optim.warmup_from", "must be in"),
           ({"optim.schedule_stretch": 0.5}, "optim.schedule_stretch", "must be >= 1"),
           ({"optim.clip_exclude": "("}, "optim.clip_exclude", "bad regular expression")]
  for changes, field, message in cases:
    assert_refused(tiny_config("msn"), changes, rf"^config\.{re.escape(field)}=.*{message}", 8)
  config = tiny_config("msn")
  trainer, state, _ = _loss_inputs(config)
  config.optim.clip_exclude = "protos"
  with pytest.raises(validate.ConfigError, match=r"^config\.optim\.clip_exclude='protos': matches no parameter"):
    optim.check_against_params(config, state.params)
