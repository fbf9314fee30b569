"""Fully sharded data parallelism (FSDP, ZeRO-3; Rajbhandari et al. 2020): the parameters, the optimizer state
and the EMA target split over the devices of the batch axis, instead of a copy of each on every device.

A leaf is split along its largest dimension that the device count divides (big_vision's ``fsdp`` rule), when it
has at least ``min_size`` elements; smaller leaves (biases, norms, scalars) and leaves no dimension of which
divides stay replicated, as do the BN statistics, the method state and the online probe. The step is
``jax.jit`` over two halves:

1. the gradient half under ``jax.shard_map`` (``train_step.make_gradient_step``, unchanged): each device gathers
   the parameters and the EMA target (``all_gather``), runs the loss on its share of the global batch with the
   same collectives as the replicated step, and reduce-scatters the gradients (``psum_scatter``), keeping the
   mean over the devices of its own shard;
2. the update half on the global, sharded arrays (``train_step.apply_gradients``): optax, the EMA and the NaN
   guard, partitioned by XLA. A global gradient norm (clipping) or LARS's per-matrix trust ratio is then the
   norm of the whole array, as in the replicated step, which a per-shard update inside shard_map would get
   wrong.

The whole parameter tree is gathered at the start of the gradient half, not layer by layer: between steps a
device holds 1/N of the state, but during the step a full copy of the parameters and of the gradients (and of
the EMA target, for methods with one). The losses keep their global-batch semantics; results equal the
replicated step's to float32 rounding (the gradient mean is summed in another order).
"""

from __future__ import annotations

import math
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxssl.parallel import AXIS, StepFn
from jaxssl.state import TrainState

# Leaves with fewer elements stay replicated: gathering them costs a collective each and saves little memory.
MIN_SIZE = 2**14


def leaf_spec(shape: tuple[int, ...], devices: int, min_size: int = MIN_SIZE) -> P:
  """The PartitionSpec of one array: ``AXIS`` on its largest dimension divisible by ``devices`` (the first of
  equal ones), or replicated (``P()``) when it is small or no dimension divides."""
  if devices <= 1 or math.prod(shape) < min_size:
    return P()
  candidates = [i for i, d in enumerate(shape) if d % devices == 0]
  if not candidates:
    return P()
  dim = max(candidates, key=lambda i: (shape[i], -i))
  return P(*([None] * dim + [AXIS]))


def _specs(tree: Any, devices: int, min_size: int) -> Any:
  return jax.tree.map(lambda leaf: leaf_spec(tuple(leaf.shape), devices, min_size), tree)


def state_specs(state: TrainState, devices: int, min_size: int = MIN_SIZE) -> TrainState:
  """The PartitionSpec of every leaf of the state: the parameters, the optimizer state and the EMA target by
  ``leaf_spec`` (an Adam moment is split as its parameter), everything else replicated."""
  replicated = jax.tree.map(lambda _: P(), state)
  return replicated.replace(params=_specs(state.params, devices, min_size),
                            opt_state=_specs(state.opt_state, devices, min_size),
                            ema_params=_specs(state.ema_params, devices, min_size))


def _named(specs: Any, mesh: Mesh) -> Any:
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs, is_leaf=lambda x: isinstance(x, P))


def state_shardings(state: TrainState, mesh: Mesh, min_size: int = MIN_SIZE) -> TrainState:
  """``state_specs`` as NamedShardings on ``mesh``: where to put a state (``jax.device_put``) or restore one."""
  return _named(state_specs(state, mesh.size, min_size), mesh)


def _dim(spec: P) -> int | None:
  """The dimension a spec splits over ``AXIS``, or None for a replicated leaf."""
  return next((i for i, name in enumerate(spec) if name == AXIS), None)


def gather(tree: Any, specs: Any, axis_name: str = AXIS) -> Any:
  """Inside shard_map: each leaf's shards joined into the whole array (replicated leaves as they are)."""
  def one(leaf, spec):
    dim = _dim(spec)
    return leaf if dim is None else jax.lax.all_gather(leaf, axis_name, axis=dim, tiled=True)
  return jax.tree.map(one, tree, specs)


def scatter_mean(tree: Any, specs: Any, axis_name: str = AXIS) -> Any:
  """Inside shard_map: the mean over the devices of each leaf, of which each device keeps its own shard
  (``psum_scatter``); replicated leaves get the whole mean (``pmean``)."""
  devices = jax.lax.psum(1, axis_name)

  def one(leaf, spec):
    dim = _dim(spec)
    if dim is None:
      return jax.lax.pmean(leaf, axis_name)
    return jax.lax.psum_scatter(leaf, axis_name, scatter_dimension=dim, tiled=True) / devices
  return jax.tree.map(one, tree, specs)


def fsdp_step(trainer, state: TrainState, mesh: Mesh, min_size: int = MIN_SIZE) -> StepFn:
  """The jitted training step (state, batch) -> (state, metrics) for a state placed by ``state_shardings``
  (``state`` gives the structure and shapes; it may be abstract). The state buffer is donated."""
  from jaxssl import train_step

  specs = state_specs(state, mesh.size, min_size)
  gradient_step = train_step.make_gradient_step(
      trainer, AXIS, reduce_gradients=lambda g: scatter_mean(g, specs.params))
  # The gradient half never sees the optimizer state: it stays sharded, outside shard_map.
  inner_specs = specs.replace(opt_state=None)

  def gradients(state: TrainState, batch) -> train_step.Gradients:
    whole = state.replace(params=gather(state.params, specs.params),
                          ema_params=gather(state.ema_params, specs.ema_params))
    return gradient_step(whole, batch)

  out_specs = train_step.Gradients(grads=specs.params, batch_stats=P(), method_state=P(), probe_params=P(),
                                   probe_opt_state=P(), metrics=P())
  mapped = jax.shard_map(gradients, mesh=mesh, in_specs=(inner_specs, P(AXIS)), out_specs=out_specs,
                         check_vma=False)

  def step(state: TrainState, batch):
    g = mapped(state.replace(opt_state=None), batch)
    return train_step.apply_gradients(trainer, state, g)

  shardings = _named(specs, mesh)
  return jax.jit(step, in_shardings=(shardings, NamedSharding(mesh, P(AXIS))),
                 out_shardings=(shardings, NamedSharding(mesh, P())), donate_argnums=0)
