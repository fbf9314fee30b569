"""The train state: everything a step reads and writes, as one pytree of arrays."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


class TrainState(flax.struct.PyTreeNode):
  """State of one training run: replicated on every device, or split over them with ``parallel.fsdp``.

  Attributes:
    step: int32 scalar, optimizer steps taken.
    params: the method's model's parameters {"encoder", ...: the heads, decoder, tokens it adds}.
    batch_stats: BatchNorm running statistics of the model ({} for models without BatchNorm).
    opt_state: optax state.
    ema_params: EMA target parameters, the parts of ``params`` the method names (``Method.ema_parts``:
      {"encoder", "projector"} for BYOL, DINO, MoCo, MeanShift), or None.
    ema_batch_stats: EMA of the online running statistics, for evaluating the target, or None.
    method_state: the method's own state (queues, centres); () when it has none.
    rng: the run's base PRNG key (raw uint32 [2]); the step key is fold_in(rng, step).
    probe_params: the online linear probe on stop-gradient representations (solo-learn's online classifier),
      or None when it is off or the train split has no labels.
    probe_opt_state: its optax state, or None.
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any
  ema_params: Any
  ema_batch_stats: Any
  method_state: Any
  rng: jax.Array
  probe_params: Any = None
  probe_opt_state: Any = None


def target_subtree(tree: Any, parts: tuple[str, ...]) -> Any:
  """The part of a params / batch_stats tree that an EMA target keeps: the top-level entries ``parts``."""
  return {name: value for name, value in tree.items() if name in parts}


def ema_update(ema: Any, online: Any, tau: jax.Array, parts: tuple[str, ...]) -> Any:
  """ema <- tau * ema + (1 - tau) * online, leaf by leaf over the target's subtree ``parts``."""
  return jax.tree.map(lambda e, o: tau * e + (1.0 - tau) * o, ema, target_subtree(online, parts))
