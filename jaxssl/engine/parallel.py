"""Data parallelism over a 1-D mesh of every device of every process: the mesh, the per-device step under
``jax.shard_map`` (or ``jax.pmap``), and the placement of the state (replicated; split over the devices instead
with ``parallel.fsdp``, ``jaxssl.engine.fsdp``) and of the batch (sharded over the batch axis ``AXIS``). The per-device step reaches the rest of the global batch only through collectives
over ``AXIS``."""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"
# {"image": uint8 [B, H, W, C], "label": int32 [B] (-1 when unlabeled)}, or with the crops taken on the host
# {"view0": uint8 [B, S0, S0, C], "view1": ..., "label": ...}, one entry per view recipe.
Batch = dict[str, jax.Array]
StepFn = Callable[[Any, Batch], tuple[Any, dict[str, jax.Array]]]


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all global devices (every process's), axis ``AXIS``."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (AXIS,))


def shard_step(step: StepFn, mesh: Mesh) -> StepFn:
  """The per-device step, data-parallel under jax.shard_map and jitted; the state buffer is donated.

  ``check_vma=False`` gives pmap's semantics: the state is replicated by construction (gradients, BN statistics
  and metrics are averaged over the axis), and all_gather outputs are used as replicated values.
  """
  mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()), check_vma=False)
  return jax.jit(mapped, donate_argnums=0)


def pmap_step(step: StepFn) -> StepFn:
  """The same per-device step under jax.pmap (state with a leading device axis, batch reshaped [D, B/D, ...])."""
  return jax.pmap(step, axis_name=AXIS, donate_argnums=0)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Puts a pytree on every device of the mesh, replicated."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> Batch:
  """This process's share of the global batch -> global arrays sharded over the mesh's batch axis."""
  sharding = NamedSharding(mesh, P(AXIS))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
