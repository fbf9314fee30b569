"""SimSiam (Chen and He 2021, "Exploring Simple Siamese Representation Learning", arXiv:2011.10566)."""

from __future__ import annotations

import jax

from jaxssl import augment, losses
from jaxssl.methods.base import Method, recipe_kwargs
from jaxssl.models import MLP


def _heads(config, axis_name, dtype):
  m = config.method
  projector = MLP(hidden_dims=tuple(m.proj_hidden_dims), output_dim=m.proj_dim, last_bn=True,
                  axis_name=axis_name, dtype=dtype)
  predictor = MLP(hidden_dims=tuple(m.pred_hidden_dims), output_dim=m.proj_dim, axis_name=axis_name, dtype=dtype)
  return projector, predictor


def _recipes(config):
  return augment.simclr_recipes(**recipe_kwargs(config), blur_prob=config.augment.blur_prob,
                                strength=0.5 * config.augment.jitter_strength)


def _loss(online, target, method_state, labels, axis_name):
  """L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2 with D the negative cosine; no EMA, no negatives."""
  p1, p2 = online.predictions
  z1, z2 = (jax.lax.stop_gradient(z) for z in online.projections)
  value = 0.5 * losses.negative_cosine(p1, z2, axis_name) + 0.5 * losses.negative_cosine(p2, z1, axis_name)
  return value, {"loss": value}


def make(config) -> Method:
  del config
  return Method(name="simsiam", make_heads=_heads, recipes=_recipes, loss=_loss)


def defaults():
  """Paper defaults: projector 2048-2048-2048 (BN on the output), predictor 2048-512-2048 bottleneck; SimSiam
  uses SimCLR's augmentations with jitter (0.4, 0.4, 0.4, 0.1), i.e. strength 0.5."""
  return {"proj_hidden_dims": (2048, 2048), "proj_dim": 2048, "pred_hidden_dims": (512,)}
