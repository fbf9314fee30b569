"""SupCon (Khosla et al. 2020, "Supervised Contrastive Learning", arXiv:2004.11362)."""

from __future__ import annotations

import functools

import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import simclr_pair
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import losses

# SupCon uses SimCLR's augmentations with jitter (0.4, 0.4, 0.4, 0.1), i.e. strength 0.5.
_RECIPES = functools.partial(simclr_pair, strength=0.5)


def make(config) -> base.Method:
  """All views with the anchor's label are positives (needs a labeled train split)."""
  m = config.method

  def loss(online, target, method_state, labels, step, axis_name):
    features = jnp.stack(list(online.projections), axis=1)             # [N, V, D]
    value = losses.supcon(features, labels, temperature=m.temperature, base_temperature=m.base_temperature,
                          axis_name=axis_name)
    return value, {"loss": value}

  return joint_embedding.method("supcon", mlp_heads, _RECIPES, loss, needs_labels=True)


def defaults():
  """Official defaults: projector 2048-128 (ResNet-50), temperature 0.07 = base temperature."""
  return {"proj_hidden_dims": (2048,), "proj_dim": 128, "temperature": 0.07, "base_temperature": 0.07}


def check(config) -> None:
  check_heads(config)
  config_checks.temperature(config, "method.temperature")
  config_checks.temperature(config, "method.base_temperature")


def small(batch_size: int) -> dict:
  return small_heads()
