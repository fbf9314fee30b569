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

With ``per_block`` (``parallel.fsdp_per_block``, the default) the parameters of the ViT blocks stay sharded
into the gradient half and each block gathers its own on entry (``jaxssl.models.block_gather``): gathered again in
the backward pass, their gradients reduce-scattered by the gather's transpose, so one block's whole parameters
and gradients live at a time. What is outside the blocks (patch embedding, heads, ResNets, which have no such
blocks) is gathered on entry to the gradient half; without ``per_block`` everything is, and a device then holds
a whole copy of the parameters and of the gradients (and of the EMA target) during the step. The losses keep
their global-batch semantics; results equal the replicated step's to float32 rounding (the gradient mean is
summed in another order).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxssl.engine import train_step
from jaxssl.engine.parallel import AXIS, StepFn
from jaxssl.engine.state import TrainState
from jaxssl.models import block_gather

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


def _key_name(key) -> str:
  return str(getattr(key, "key", getattr(key, "name", getattr(key, "idx", key))))


def _nothing_marked(specs: Any) -> Any:
  return jax.tree.map(lambda _: False, specs, is_leaf=lambda x: isinstance(x, P))


def gathered_in_blocks(specs: Any) -> Any:
  """A tree of bools over a parameter tree's specs: which leaves the model's blocks gather themselves
  (``block_gather.in_block``) and so stay sharded into the gradient half."""
  return jax.tree_util.tree_map_with_path(
      lambda path, spec: block_gather.in_block(tuple(_key_name(k) for k in path), _dim(spec)),
      specs, is_leaf=lambda x: isinstance(x, P))


def gather(tree: Any, specs: Any, axis_name: str = AXIS, keep: Any = None) -> Any:
  """Inside shard_map: each leaf's shards joined into the whole array (replicated leaves, and those ``keep``
  marks, as they are)."""
  keep = _nothing_marked(specs) if keep is None else keep

  def one(leaf, spec, kept):
    dim = _dim(spec)
    return leaf if dim is None or kept else jax.lax.all_gather(leaf, axis_name, axis=dim, tiled=True)
  return jax.tree.map(one, tree, specs, keep)


def scatter_mean(tree: Any, specs: Any, axis_name: str = AXIS, scattered: Any = None) -> Any:
  """Inside shard_map: the mean over the devices of each leaf, of which each device keeps its own shard
  (``psum_scatter``); replicated leaves get the whole mean (``pmean``). Leaves ``scattered`` marks are already
  this device's shard of the sum (the gradient of a block's gathered parameter) and are only divided."""
  devices = jax.lax.psum(1, axis_name)
  scattered = _nothing_marked(specs) if scattered is None else scattered

  def one(leaf, spec, summed):
    dim = _dim(spec)
    if dim is None:
      return jax.lax.pmean(leaf, axis_name)
    if summed:
      return leaf / devices
    return jax.lax.psum_scatter(leaf, axis_name, scatter_dimension=dim, tiled=True) / devices
  return jax.tree.map(one, tree, specs, scattered)


class GradientEntry(NamedTuple):
  """How the gradient half receives a sharded state: ``specs`` (``state_specs``), which parameter and EMA
  leaves stay sharded for the blocks to gather themselves (``kept_params``, ``kept_ema``: trees of bools), and
  whether the blocks do (``per_block``)."""
  specs: TrainState
  kept_params: Any
  kept_ema: Any
  per_block: bool

  def enter(self, state: TrainState) -> TrainState:
    """Inside shard_map: the state with every split leaf the blocks do not gather joined whole."""
    return state.replace(params=gather(state.params, self.specs.params, keep=self.kept_params),
                         ema_params=gather(state.ema_params, self.specs.ema_params, keep=self.kept_ema))

  def reduce(self, grads: Any) -> Any:
    """Inside shard_map: the gradients' mean over the devices, each device keeping its own shard."""
    return scatter_mean(grads, self.specs.params, scattered=self.kept_params)


def gradient_entry(state: TrainState, devices: int, min_size: int = MIN_SIZE,
                   per_block: bool = True) -> GradientEntry:
  """The ``GradientEntry`` of a state (concrete or abstract) split over ``devices``."""
  specs = state_specs(state, devices, min_size)
  kept = gathered_in_blocks if per_block and devices > 1 else _nothing_marked
  return GradientEntry(specs, kept(specs.params), kept(specs.ema_params), per_block)


def gradient_trainer(trainer: train_step.Trainer, per_block: bool) -> train_step.Trainer:
  """The trainer the gradient half runs: with ``per_block``, its model's blocks gather their own shards over the
  mesh axis (``ViT.gather_axis``); the same parameters as ``trainer.model``'s."""
  if not per_block:
    return trainer
  return trainer._replace(model=train_step.make_model(trainer.config, trainer.method, AXIS, gather_axis=AXIS))


def fsdp_step(trainer, state: TrainState, mesh: Mesh, min_size: int = MIN_SIZE, per_block: bool = True) -> StepFn:
  """The jitted training step (state, batch) -> (state, metrics) for a state placed by ``state_shardings``
  (``state`` gives the structure and shapes; it may be abstract); ``per_block``: the ViT blocks gather their
  own parameters (module docstring). The state buffer is donated."""
  entry = gradient_entry(state, mesh.size, min_size, per_block)
  specs = entry.specs
  gradient_step = train_step.make_gradient_step(gradient_trainer(trainer, per_block), AXIS,
                                                reduce_gradients=entry.reduce)
  # The gradient half never sees the optimizer state: it stays sharded, outside shard_map.
  inner_specs = specs.replace(opt_state=None)

  def gradients(state: TrainState, batch) -> train_step.Gradients:
    return gradient_step(entry.enter(state), batch)

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
