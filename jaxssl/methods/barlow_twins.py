"""Barlow Twins (Zbontar et al. 2021, "Self-Supervised Learning via Redundancy Reduction", arXiv:2103.03230)."""

from __future__ import annotations

from jaxssl import config_checks, losses
from jaxssl.methods.base import Method, byol_pair, check_heads, mlp_heads, small_heads


def make(config) -> Method:
  """Cross-correlation of the standardised projections over the global batch, pushed to the identity."""
  lambd = config.method.lambd

  def loss(online, target, method_state, labels, step, axis_name):
    z1, z2 = online.projections
    value = losses.barlow_twins_loss(z1, z2, lambd=lambd, axis_name=axis_name)
    return value, {"loss": value}

  return Method(name="barlow_twins", make_heads=mlp_heads, recipes=byol_pair, loss=loss)


def defaults():
  """Official defaults: projector 8192-8192-8192, lambda 0.0051."""
  return {"proj_hidden_dims": (8192, 8192), "proj_dim": 8192, "lambd": 0.0051}


def check(config) -> None:
  check_heads(config)
  config_checks.in_range(config, "method.lambd", 0.0, 1.0)


def small(batch_size: int) -> dict:
  return small_heads()
