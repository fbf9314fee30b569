"""MoCo v3 (Chen, Xie and He 2021, "An Empirical Study of Training Self-Supervised Vision Transformers")."""

from __future__ import annotations

import functools

import jax

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import byol_pair, check_momentum, ema_schedule
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import losses

_HEADS = functools.partial(mlp_heads, projector_last_bn=True, with_predictor=True)


def make(config) -> base.Method:
  """Symmetric InfoNCE between online predictions and momentum-encoder keys of the other view."""
  temperature = config.method.temperature

  def loss(online, target, method_state, labels, step, axis_name):
    q1, q2 = online.predictions
    k1, k2 = (jax.lax.stop_gradient(k) for k in target.projections)
    value = (losses.info_nce(q1, k2, temperature, axis_name) + losses.info_nce(q2, k1, temperature, axis_name))
    return value, {"loss": value}

  return joint_embedding.method("mocov3", _HEADS, byol_pair, loss, ema=ema_schedule(config.method.base_momentum))


def defaults():
  """Paper defaults: projector 4096-4096-256 with BN on the output, predictor 4096-256, T 0.2, momentum 0.99
  rising to 1 by a cosine."""
  return {"proj_hidden_dims": (4096, 4096), "proj_dim": 256, "pred_hidden_dims": (4096,), "temperature": 0.2,
          "base_momentum": 0.99}


def check(config) -> None:
  check_heads(config)
  check_momentum(config)
  config_checks.temperature(config, "method.temperature")


def small(batch_size: int) -> dict:
  return small_heads(with_predictor=True)
