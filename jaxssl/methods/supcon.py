"""SupCon (Khosla et al. 2020, "Supervised Contrastive Learning", arXiv:2004.11362)."""

from __future__ import annotations

import jax.numpy as jnp

from jaxssl import augment, losses
from jaxssl.methods.base import Method, recipe_kwargs
from jaxssl.models import MLP


def _heads(config, axis_name, dtype):
  m = config.method
  projector = MLP(hidden_dims=tuple(m.proj_hidden_dims), output_dim=m.proj_dim, axis_name=axis_name, dtype=dtype)
  return projector, None


def _recipes(config):
  return augment.simclr_recipes(**recipe_kwargs(config), blur_prob=config.augment.blur_prob,
                                strength=0.5 * config.augment.jitter_strength)


def make(config) -> Method:
  """All views with the anchor's label are positives (needs a labeled train split)."""
  m = config.method

  def loss(online, target, method_state, labels, axis_name):
    features = jnp.stack(list(online.projections), axis=1)             # [N, V, D]
    value = losses.supcon(features, labels, temperature=m.temperature, base_temperature=m.base_temperature,
                          axis_name=axis_name)
    return value, {"loss": value}

  return Method(name="supcon", make_heads=_heads, recipes=_recipes, loss=loss, needs_labels=True)


def defaults():
  """Official defaults: projector 2048-128 (ResNet-50), temperature 0.07 = base temperature."""
  return {"proj_hidden_dims": (2048,), "proj_dim": 128, "temperature": 0.07, "base_temperature": 0.07}
