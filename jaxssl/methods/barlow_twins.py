"""Barlow Twins (Zbontar et al. 2021, "Self-Supervised Learning via Redundancy Reduction", arXiv:2103.03230)."""

from __future__ import annotations

from jaxssl import augment, losses
from jaxssl.methods.base import Method, recipe_kwargs
from jaxssl.models import MLP


def _heads(config, axis_name, dtype):
  m = config.method
  projector = MLP(hidden_dims=tuple(m.proj_hidden_dims), output_dim=m.proj_dim, axis_name=axis_name, dtype=dtype)
  return projector, None


def _recipes(config):
  # The official code uses BYOL's asymmetric pair (blur 1.0 / 0.1, solarize 0 / 0.2).
  return augment.byol_recipes(**recipe_kwargs(config), blur_probs=tuple(config.augment.blur_probs),
                              solarize_probs=tuple(config.augment.solarize_probs))


def make(config) -> Method:
  """Cross-correlation of the standardised projections over the global batch, pushed to the identity."""
  lambd = config.method.lambd

  def loss(online, target, method_state, labels, axis_name):
    z1, z2 = online.projections
    value = losses.barlow_twins_loss(z1, z2, lambd=lambd, axis_name=axis_name)
    return value, {"loss": value}

  return Method(name="barlow_twins", make_heads=_heads, recipes=_recipes, loss=loss)


def defaults():
  """Official defaults: projector 8192-8192-8192, lambda 0.0051."""
  return {"proj_hidden_dims": (8192, 8192), "proj_dim": 8192, "lambd": 0.0051}
