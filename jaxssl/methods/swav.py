"""SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by Contrasting Cluster Assignments")."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxssl import augment, losses
from jaxssl.methods.base import Method, mlp_heads, simclr_pair
from jaxssl.models import Prototypes, cosine_scores


def _heads(config, axis_name, dtype):
  projector, _ = mlp_heads(config, axis_name, dtype)
  return projector, Prototypes(num_prototypes=config.method.num_prototypes)


def _recipes(config):
  a = config.augment
  global_views = simclr_pair(config)
  return augment.multicrop_recipes(global_views, a.local_size, a.num_local_crops, tuple(a.local_crop_scale))


def _unit(x):
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def make(config) -> Method:
  """Codes of the two global views (Sinkhorn over the global batch and, once full, the queue) predicted from
  every other view. ``method_state`` holds the step and a queue of past normalised projections of the global
  views, one global queue replicated on every device; each device scores its own slice of it, so the
  equipartition runs over the same rows on any number of devices."""
  m = config.method
  global_batch = config.train.batch_size
  assign_views = (0, 1)

  def init_state(key, config):
    state = {"step": jnp.zeros((), jnp.int32)}
    if m.queue_size > 0:            # no empty array: checkpoints cannot hold zero-size arrays
      state["queue"] = jnp.zeros((len(assign_views), m.queue_size, m.proj_dim), jnp.float32)
    return state

  def loss(online, target, method_state, labels, axis_name):
    step = method_state["step"]
    prototypes = online.params["predictor"]["prototypes"]
    # Prototypes receive no gradient during the first freeze_prototypes_steps (official: 313 iterations).
    prototypes = jnp.where(step < m.freeze_prototypes_steps, jax.lax.stop_gradient(prototypes), prototypes)
    scores = [cosine_scores(z, prototypes) for z in online.projections]
    queue_scores = queue_weights = None
    if m.queue_size > 0:
      num_devices = 1 if axis_name is None else jax.lax.psum(1, axis_name)
      rows = m.queue_size // num_devices
      start = 0 if axis_name is None else jax.lax.axis_index(axis_name) * rows
      local_queue = jax.lax.dynamic_slice_in_dim(method_state["queue"], start, rows, axis=1)
      queue_scores = [jax.lax.stop_gradient(cosine_scores(local_queue[i], prototypes))
                      for i in range(len(assign_views))]
      full = step >= m.queue_start_step + m.queue_size // global_batch
      queue_weights = jnp.full((rows,), full, jnp.float32)
    value = losses.swav_loss(scores, m.temperature, m.sinkhorn_epsilon, m.sinkhorn_iterations, queue_scores,
                             queue_weights, assign_views, axis_name)
    return value, {"loss": value}

  def update_state(method_state, online, target, axis_name):
    step = method_state["step"]
    if m.queue_size == 0:
      return {"step": step + 1}
    queue = method_state["queue"]
    filled = []
    for i, view in enumerate(assign_views):
      batch = _unit(jax.lax.stop_gradient(online.projections[view]))
      if axis_name is not None:
        batch = jax.lax.all_gather(batch, axis_name, tiled=True)
      filled.append(jnp.concatenate([batch, queue[i, :-batch.shape[0]]]))   # newest first, as the official code
    queue = jnp.where(step >= m.queue_start_step, jnp.stack(filled), queue)
    return {"step": step + 1, "queue": queue}

  return Method(name="swav", make_heads=_heads, recipes=_recipes, loss=loss, init_state=init_state,
                update_state=update_state)


OPTIONAL_SIZES = ("queue_size",)   # SwAV runs without a queue at 0


def defaults():
  """Official defaults: projector 2048-128, 3000 prototypes, T 0.1, Sinkhorn epsilon 0.05 with 3 iterations,
  prototypes frozen for the first 313 steps, queue 3840 (used from epoch 15 in the official ImageNet runs;
  here from ``queue_start_step``; queue_size 0 disables it)."""
  return {"proj_hidden_dims": (2048,), "proj_dim": 128, "num_prototypes": 3000, "temperature": 0.1,
          "sinkhorn_epsilon": 0.05, "sinkhorn_iterations": 3, "freeze_prototypes_steps": 313,
          "queue_size": 3840, "queue_start_step": 0}
