"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent", arXiv:2006.07733)."""

from __future__ import annotations

import functools

import jax

from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import byol_pair, check_momentum, ema_schedule
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import losses

_HEADS = functools.partial(mlp_heads, with_predictor=True)


def _loss(online, target, method_state, labels, step, axis_name):
  """Symmetrised: the prediction of each view regresses the target's projection of the other view."""
  p1, p2 = online.predictions
  z1, z2 = jax.tree.map(jax.lax.stop_gradient, tuple(target.projections))
  value = losses.byol_loss(p1, z2, axis_name) + losses.byol_loss(p2, z1, axis_name)
  return value, {"loss": value}


def make(config) -> base.Method:
  """BYOL: online predictor regresses an EMA target's projection, tau from base_momentum rising to 1 (cosine)."""
  return joint_embedding.method("byol", _HEADS, byol_pair, _loss, ema=ema_schedule(config.method.base_momentum))


def defaults():
  """Paper defaults: projector and predictor 4096-256, base momentum 0.996 (cosine to 1)."""
  return {"proj_hidden_dims": (4096,), "proj_dim": 256, "pred_hidden_dims": (4096,), "base_momentum": 0.996}


def check(config) -> None:
  check_heads(config)
  check_momentum(config)


def small(batch_size: int) -> dict:
  return small_heads(with_predictor=True)
