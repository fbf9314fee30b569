"""SimSiam (Chen and He 2021, "Exploring Simple Siamese Representation Learning", arXiv:2011.10566)."""

from __future__ import annotations

import functools

import jax

from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import simclr_pair
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import losses

_HEADS = functools.partial(mlp_heads, projector_last_bn=True, with_predictor=True)
_RECIPES = functools.partial(simclr_pair, strength=0.5)


def _loss(online, target, method_state, labels, step, axis_name):
  """L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2 with D the negative cosine; no EMA, no negatives."""
  p1, p2 = online.predictions
  z1, z2 = (jax.lax.stop_gradient(z) for z in online.projections)
  value = 0.5 * losses.negative_cosine(p1, z2, axis_name) + 0.5 * losses.negative_cosine(p2, z1, axis_name)
  return value, {"loss": value}


def make(config) -> base.Method:
  del config
  return joint_embedding.method("simsiam", _HEADS, _RECIPES, _loss)


def defaults():
  """Paper defaults: projector 2048-2048-2048 (BN on the output), predictor 2048-512-2048 bottleneck; SimSiam
  uses SimCLR's augmentations with jitter (0.4, 0.4, 0.4, 0.1), i.e. strength 0.5."""
  return {"proj_hidden_dims": (2048, 2048), "proj_dim": 2048, "pred_hidden_dims": (512,)}


check = check_heads


def small(batch_size: int) -> dict:
  return small_heads(with_predictor=True)
