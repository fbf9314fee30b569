"""MoCo v3 (Chen, Xie and He 2021, "An Empirical Study of Training Self-Supervised Vision Transformers")."""

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
  return augment.byol_recipes(**recipe_kwargs(config), blur_probs=tuple(config.augment.blur_probs),
                              solarize_probs=tuple(config.augment.solarize_probs))


def make(config) -> Method:
  """Symmetric InfoNCE between online predictions and momentum-encoder keys of the other view."""
  temperature = config.method.temperature

  def loss(online, target, method_state, labels, axis_name):
    q1, q2 = online.predictions
    k1, k2 = (jax.lax.stop_gradient(k) for k in target.projections)
    value = (losses.info_nce(q1, k2, temperature, axis_name) + losses.info_nce(q2, k1, temperature, axis_name))
    return value, {"loss": value}

  return Method(name="mocov3", make_heads=_heads, recipes=_recipes, loss=loss, uses_ema=True)


def defaults():
  """Paper defaults: projector 4096-4096-256 with BN on the output, predictor 4096-256, T 0.2, momentum 0.99
  rising to 1 by a cosine."""
  return {"proj_hidden_dims": (4096, 4096), "proj_dim": 256, "pred_hidden_dims": (4096,), "temperature": 0.2,
          "base_momentum": 0.99}
