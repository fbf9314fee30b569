"""NNCLR (Dwibedi et al. 2021, "With a Little Help from My Friends: Nearest-Neighbor Contrastive Learning")."""

from __future__ import annotations

import functools

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import byol_pair
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import losses

_HEADS = functools.partial(mlp_heads, projector_last_bn=True, with_predictor=True)


def make(config) -> base.Method:
  """The nearest neighbour of each view's projection in a support set is the positive for the other view's
  prediction. The support set (``method_state``) is a queue filled with the first view's projections of the
  global batch; it starts as random unit vectors, as solo-learn does."""
  m = config.method

  def init_state(key, config):
    return losses.random_queue(key, m.queue_size, m.proj_dim)

  def loss(online, target, method_state, labels, step, axis_name):
    z1, z2 = online.projections
    p1, p2 = online.predictions
    nn1 = losses.nearest_neighbour(z1, method_state["queue"])
    nn2 = losses.nearest_neighbour(z2, method_state["queue"])
    value = 0.5 * (losses.nnclr_loss(nn1, p2, m.temperature, axis_name)
                   + losses.nnclr_loss(nn2, p1, m.temperature, axis_name))
    return value, {"loss": value}

  def update_state(method_state, online, target, step, axis_name):
    queue, pointer = losses.enqueue(method_state["queue"], method_state["pointer"], online.projections[0],
                                    axis_name)
    return {"queue": queue, "pointer": pointer}

  return joint_embedding.method("nnclr", _HEADS, byol_pair, loss, init_state=init_state,
                                update_state=update_state)


def defaults():
  """Paper defaults: projector 2048-2048-256 (BN on the output), predictor 4096-256, support set 98,304,
  temperature 0.1."""
  return {"proj_hidden_dims": (2048, 2048), "proj_dim": 256, "pred_hidden_dims": (4096,), "temperature": 0.1,
          "queue_size": 98304}


def check(config) -> None:
  check_heads(config)
  config_checks.temperature(config, "method.temperature")
  config_checks.multiple_of_batch(config, "method.queue_size")


def small(batch_size: int) -> dict:
  return {**small_heads(with_predictor=True), "method.queue_size": 4 * batch_size}
