"""Barlow Twins (Zbontar et al. 2021, "Self-Supervised Learning via Redundancy Reduction", arXiv:2103.03230)."""

from __future__ import annotations

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import byol_pair
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import losses


def make(config) -> base.Method:
  """Cross-correlation of the standardised projections over the global batch, pushed to the identity."""
  lambd = config.method.lambd

  def loss(online, target, method_state, labels, step, axis_name):
    z1, z2 = online.projections
    value = losses.barlow_twins_loss(z1, z2, lambd=lambd, axis_name=axis_name)
    return value, {"loss": value}

  return joint_embedding.method("barlow_twins", mlp_heads, byol_pair, loss)


def defaults():
  """Official defaults: projector 8192-8192-8192, lambda 0.0051."""
  return {"proj_hidden_dims": (8192, 8192), "proj_dim": 8192, "lambd": 0.0051}


def check(config) -> None:
  check_heads(config)
  config_checks.in_range(config, "method.lambd", 0.0, 1.0)


def small(batch_size: int) -> dict:
  return small_heads()
