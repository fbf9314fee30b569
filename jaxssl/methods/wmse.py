"""W-MSE (Ermolov, Siarohin, Sangineto and Sebe 2021, "Whitening for Self-Supervised Representation Learning")."""

from __future__ import annotations

import jax

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import recipe_kwargs
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import augment, losses


def _recipes(config):
  # The official code: crop (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.1, flip; no blur on CIFAR.
  kwargs = recipe_kwargs(config)
  view = augment.ViewRecipe(**kwargs, saturation=0.4, grayscale_prob=0.1, blur_prob=config.augment.blur_prob)
  return view, view


def make(config) -> base.Method:
  """Whitened embeddings of the two views pulled together; whitening over sub-batches of the global batch."""
  m = config.method

  base_key = jax.random.key(config.seed + 7)

  def loss(online, target, method_state, labels, step, axis_name):
    z1, z2 = online.projections
    key = jax.random.fold_in(base_key, step)        # same on every device: global permutations
    value = losses.wmse_loss(z1, z2, w_size=m.w_size, eps=m.w_eps, axis_name=axis_name, key=key,
                             w_iter=m.w_iter)
    return value, {"loss": value}

  return joint_embedding.method("wmse", mlp_heads, _recipes, loss)


def defaults():
  """Official CIFAR defaults: projector 1024-64, whitening sub-batch 128, no shrinkage, one whitening pass
  (w_iter; the official code uses more on some datasets)."""
  return {"proj_hidden_dims": (1024,), "proj_dim": 64, "w_size": 128, "w_eps": 0.0, "w_iter": 1}


def check(config) -> None:
  check_heads(config)
  config_checks.positive_int(config, "method.w_iter")
  config_checks.in_range(config, "method.w_eps", 0.0, 1.0)
  w_size, batch = config.method.w_size, config.train.batch_size
  if not isinstance(w_size, int) or w_size <= config.method.proj_dim or batch % w_size:
    config_checks.fail("method.w_size", w_size, f"must exceed method.proj_dim ({config.method.proj_dim}) and "
                       f"divide train.batch_size ({batch})")


def small(batch_size: int) -> dict:
  return {**small_heads(), "method.proj_dim": 4, "method.w_size": 8}
