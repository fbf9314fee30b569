"""Mean Shift (Koohpayegani, Tejankar and Pirsiavash 2021, "Mean Shift for Self-Supervised Learning")."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import check_momentum, ema_schedule, recipe_kwargs
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import augment, losses


_HEADS = functools.partial(mlp_heads, with_predictor=True)


def _recipes(config):
  """View 0, the query: strong (jitter 0.4/0.4/0.4/0.1 p 0.8, grayscale 0.2, blur 0.5); view 1, the target:
  weak (crop and flip only), as the official --weak_strong setting."""
  kwargs = recipe_kwargs(config)
  strong = augment.ViewRecipe(**kwargs, saturation=0.4, blur_prob=config.augment.blur_prob)
  weak = augment.ViewRecipe(**kwargs, jitter_prob=0.0, grayscale_prob=0.0)
  return strong, weak


def make(config) -> base.Method:
  """The query's prediction regresses the mean of the k nearest neighbours of the target in a memory bank of
  past targets (``method_state``, filled from the global batch before the search, as the official code). As
  there, the online network sees only the query view and the target only the other one."""
  m = config.method

  def init_state(key, config):
    bank = jax.random.normal(key, (m.bank_size, m.proj_dim))
    return {"bank": bank / jnp.linalg.norm(bank, axis=1, keepdims=True), "pointer": jnp.zeros((), jnp.int32)}

  def with_current_targets(method_state, target, axis_name):
    bank, pointer = losses.enqueue(method_state["bank"], method_state["pointer"], target.projections[0],
                                   axis_name)
    return {"bank": bank, "pointer": pointer}

  def loss(online, target, method_state, labels, step, axis_name):
    bank = with_current_targets(method_state, target, axis_name)["bank"]
    value = losses.mean_shift_loss(online.predictions[0], target.projections[0], bank, k=m.topk)
    if axis_name is not None:
      value = jax.lax.pmean(value, axis_name)
    return value, {"loss": value}

  def update_state(method_state, online, target, step, axis_name):
    return with_current_targets(method_state, target, axis_name)

  return joint_embedding.method("meanshift", _HEADS, _recipes, loss,
                                ema=ema_schedule(m.base_momentum, m.ema_schedule), init_state=init_state, update_state=update_state, target_views=(1,),
                                online_views=(0,))


def defaults():
  """Official defaults for ResNet-50 (feature 2048): projector 4096-512, predictor 4096-512, k 5, bank 128,000,
  constant EMA momentum 0.99."""
  return {"proj_hidden_dims": (4096,), "proj_dim": 512, "pred_hidden_dims": (4096,), "topk": 5,
          "bank_size": 128000, "base_momentum": 0.99, "ema_schedule": "constant"}


def check(config) -> None:
  check_heads(config)
  check_momentum(config)
  if config.method.ema_schedule not in ("constant", "cosine"):
    config_checks.fail("method.ema_schedule", config.method.ema_schedule, "use 'constant' or 'cosine'")
  config_checks.multiple_of_batch(config, "method.bank_size")
  if not 0 < config.method.topk <= config.method.bank_size:
    config_checks.fail("method.topk", config.method.topk, "must be in [1, method.bank_size]")


def small(batch_size: int) -> dict:
  return {**small_heads(with_predictor=True), "method.bank_size": 4 * batch_size}
