"""SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations")."""

from __future__ import annotations

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import simclr_pair
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import losses


def make(config) -> base.Method:
  """SimCLR: NT-Xent between the projections of two views; negatives from the global batch."""
  temperature = config.method.temperature

  def loss(online, target, method_state, labels, step, axis_name):
    z1, z2 = online.projections
    value = losses.nt_xent(z1, z2, temperature=temperature, axis_name=axis_name)
    return value, {"loss": value}

  return joint_embedding.method("simclr", mlp_heads, simclr_pair, loss)


def defaults():
  """Paper defaults: projector 2048-128 (SimCLR v1, appendix B.9), temperature 0.1."""
  return {"proj_hidden_dims": (2048,), "proj_dim": 128, "temperature": 0.1}


def check(config) -> None:
  check_heads(config)
  config_checks.temperature(config, "method.temperature")


def small(batch_size: int) -> dict:
  return small_heads()
