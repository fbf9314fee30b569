"""SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments")."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base
from jaxssl.methods.base import simclr_pair
from jaxssl.methods.joint_embedding import check_heads, forward_views, mlp_heads, outputs_of, small_heads
from jaxssl.models import PrototypeNetwork, Prototypes
from jaxssl.ops import augment, losses


def _model(config, encoder, axis_name, dtype):
  projector = mlp_heads(config, axis_name, dtype).projector
  return PrototypeNetwork(encoder, projector, Prototypes(num_prototypes=config.method.num_prototypes))


def _recipes(config):
  a = config.augment
  global_views = simclr_pair(config)
  return augment.multicrop_recipes(global_views, a.local_size, a.num_local_crops, tuple(a.local_crop_scale))


def _unit(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def make(config) -> base.Method:
  """Codes of the two global views (Sinkhorn over the global batch and, once full, the queue) predicted from
  every other view. ``method_state`` holds a queue of past normalised projections of the global views, one
  global queue replicated on every device; each device scores its own slice of it, so the equipartition runs
  over the same rows on any number of devices."""
  m = config.method
  global_batch = config.train.batch_size
  assign_views = (0, 1)

  def init_state(key, config):
    if m.queue_size == 0:           # no empty array: checkpoints cannot hold zero-size arrays
      return ()
    return {"queue": jnp.zeros((len(assign_views), m.queue_size, m.proj_dim), jnp.float32)}

  def loss(model, online, target, inputs):
    step, axis_name = inputs.step, inputs.axis_name
    # Prototypes receive no gradient during the first freeze_prototypes_steps (official: 313 iterations).
    per_view, batch_stats = forward_views(model, online, inputs.views, frozen=step < m.freeze_prototypes_steps)
    outputs = outputs_of(per_view)
    scores = outputs.predictions
    queue_scores = queue_weights = None
    if m.queue_size > 0:
      num_devices = 1 if axis_name is None else jax.lax.psum(1, axis_name)
      rows = m.queue_size // num_devices
      start = 0 if axis_name is None else jax.lax.axis_index(axis_name) * rows
      local_queue = jax.lax.dynamic_slice_in_dim(inputs.method_state["queue"], start, rows, axis=1)
      queue_scores = [jax.lax.stop_gradient(model.apply({"params": online.params}, local_queue[i],
                                                        method=model.score))
                      for i in range(len(assign_views))]
      full = step >= m.queue_start_step + m.queue_size // global_batch
      queue_weights = jnp.full((rows,), full, jnp.float32)
    value = losses.swav_loss(scores, m.temperature, m.sinkhorn_epsilon, m.sinkhorn_iterations, queue_scores,
                             queue_weights, assign_views, axis_name)
    return base.LossOutput(value, {"loss": value}, batch_stats, outputs.representations[:2],
                           [outputs.projections[v] for v in assign_views])

  def update_state(method_state, projections, step, axis_name):
    if m.queue_size == 0:
      return method_state
    queue = method_state["queue"]
    filled = []
    for i, z in enumerate(projections):
      batch = _unit(jax.lax.stop_gradient(z))
      if axis_name is not None:
        batch = jax.lax.all_gather(batch, axis_name, tiled=True)
      filled.append(jnp.concatenate([batch, queue[i, :-batch.shape[0]]]))   # newest first, as the official code
    queue = jnp.where(step >= m.queue_start_step, jnp.stack(filled), queue)
    return {"queue": queue}

  return base.Method(name="swav", make_model=_model, recipes=_recipes, loss=loss, init_state=init_state,
                     update_state=update_state)


def defaults():
  """Official defaults: projector 2048-128, 3000 prototypes, T 0.1, Sinkhorn epsilon 0.05 with 3 iterations,
  prototypes frozen for the first 313 steps, queue 3840 (used from epoch 15 in the official ImageNet runs;
  here from ``queue_start_step``; queue_size 0 disables it)."""
  return {"proj_hidden_dims": (2048,), "proj_dim": 128, "num_prototypes": 3000, "temperature": 0.1,
          "sinkhorn_epsilon": 0.05, "sinkhorn_iterations": 3, "freeze_prototypes_steps": 313,
          "queue_size": 3840, "queue_start_step": 0}


def step_schedules(config) -> dict[str, tuple[int, str]]:
  """The lengths in steps that must end within the run (``jaxssl.schema.schedules``): the prototypes' freeze."""
  return {"method.freeze_prototypes_steps": (int(config.method.freeze_prototypes_steps),
                                             "the prototypes get no gradient")}


def check(config) -> None:
  check_heads(config)
  config_checks.positive_int(config, "method.num_prototypes")
  config_checks.temperature(config, "method.temperature")
  config_checks.in_range(config, "method.sinkhorn_epsilon", 1e-3, 1e3)
  config_checks.positive_int(config, "method.sinkhorn_iterations")
  config_checks.non_negative_int(config, "method.freeze_prototypes_steps")
  config_checks.multiple_of_batch(config, "method.queue_size", allow_zero=True)
  config_checks.non_negative_int(config, "method.queue_start_step")


def small(batch_size: int) -> dict:
  # A queue of one global batch, full after the first step: the second step already uses it.
  return {**small_heads(), "method.num_prototypes": 8, "method.queue_size": batch_size,
          "method.queue_start_step": 0, "method.freeze_prototypes_steps": 1, "augment.num_local_crops": 2,
          "augment.local_size": 8}
