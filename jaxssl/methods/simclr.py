"""SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations")."""

from __future__ import annotations

from jaxssl import augment, losses
from jaxssl.methods.base import Method, recipe_kwargs
from jaxssl.models import MLP


def _heads(config, axis_name, dtype):
  m = config.method
  projector = MLP(hidden_dims=tuple(m.proj_hidden_dims), output_dim=m.proj_dim, axis_name=axis_name, dtype=dtype)
  return projector, None


def _recipes(config):
  return augment.simclr_recipes(**recipe_kwargs(config), blur_prob=config.augment.blur_prob,
                                strength=config.augment.jitter_strength)


def make(config) -> Method:
  """SimCLR: NT-Xent between the projections of two views; negatives from the global batch."""
  temperature = config.method.temperature

  def loss(online, target, method_state, labels, axis_name):
    z1, z2 = online.projections
    value = losses.nt_xent(z1, z2, temperature=temperature, axis_name=axis_name)
    return value, {"loss": value}

  return Method(name="simclr", make_heads=_heads, recipes=_recipes, loss=loss)


def defaults():
  """Paper defaults: projector 2048-128 (SimCLR v1, appendix B.9), temperature 0.1."""
  return {"proj_hidden_dims": (2048,), "proj_dim": 128, "temperature": 0.1}
