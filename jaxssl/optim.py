"""Optimizers and schedules: LARS / SGD with warm-up + cosine learning rate, and BYOL's EMA momentum schedule."""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax


def warmup_steps(config: ml_collections.ConfigDict, steps_per_epoch: float = 0.0) -> int:
  """``optim.warmup_epochs`` x ``steps_per_epoch`` when both are set, else ``optim.warmup_steps``."""
  if config.optim.get("warmup_epochs", 0.0) > 0 and steps_per_epoch > 0:
    return int(round(config.optim.warmup_epochs * steps_per_epoch))
  return int(config.optim.warmup_steps)


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int,
                           steps_per_epoch: float = 0.0) -> optax.Schedule:
  """Linear warm-up from 0 then cosine decay to 0; peak = base_lr * global_batch / 256 (Goyal et al. 2017)."""
  peak = config.optim.base_lr * config.train.batch_size / 256.0
  warmup = min(warmup_steps(config, steps_per_epoch), max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(init_value=0.0, peak_value=peak, warmup_steps=warmup,
                                            decay_steps=max(total_steps, warmup + 1), end_value=0.0)


def _decay_mask(params):
  """True for weight matrices and convolution kernels; False for biases and BatchNorm scale/shift."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def lars(learning_rate: optax.ScalarOrSchedule, weight_decay: float, momentum: float, trust_coefficient: float,
         mask: Callable[[optax.Params], Any]) -> optax.GradientTransformation:
  """LARS (You et al. 2017, arXiv:1708.03888) in the order of DeepMind's BYOL (byol/utils/optimizers.py) and
  PyTorch's LARS (lightly, solo-learn): weight decay, trust ratio, momentum, and only then the learning rate, so
  a step is lr_t times the momentum buffer of unscaled updates. ``mask``: the leaves that get weight decay and
  the trust ratio.

  optax.lars applies the learning rate before the momentum (a buffer of lr-scaled updates). The two agree while
  the learning rate is constant; during a warm-up optax's steps lag (at the end of a 10-step warm-up about half
  as large), which left BYOL's first steps behind lightly's from the same weights
  (benchmarks/step_parity_vs_lightly.py).
  """
  return optax.chain(optax.add_decayed_weights(weight_decay, mask=mask),
                     optax.masked(optax.scale_by_trust_ratio(trust_coefficient=trust_coefficient), mask),
                     optax.trace(decay=momentum),
                     optax.scale_by_learning_rate(learning_rate))


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int,
                   steps_per_epoch: float = 0.0) -> optax.GradientTransformation:
  """LARS (You et al. 2017) as SimCLR/BYOL use it, BN and biases excluded from weight decay and trust ratio."""
  schedule = learning_rate_schedule(config, total_steps, steps_per_epoch)
  o = config.optim
  if o.name == "lars":
    return lars(schedule, o.weight_decay, o.momentum, o.trust_coefficient, _decay_mask)
  if o.name == "sgd":
    return optax.chain(optax.add_decayed_weights(o.weight_decay, mask=_decay_mask),
                       optax.sgd(learning_rate=schedule, momentum=o.momentum))
  if o.name == "adamw":
    return optax.adamw(learning_rate=schedule, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay, mask=_decay_mask)
  raise ValueError(f"unknown optimizer {o.name!r}")


def ema_momentum(step: jax.Array, total_steps: int, base_momentum: float, schedule: str = "cosine") -> jax.Array:
  """BYOL's tau: 1 - (1 - base) * (cos(pi * step / total) + 1) / 2, rising from base to 1; or "constant"."""
  if schedule == "constant":
    return jnp.asarray(base_momentum, jnp.float32)
  progress = jnp.minimum(step / max(total_steps, 1), 1.0)
  return 1.0 - (1.0 - base_momentum) * (jnp.cos(math.pi * progress) + 1.0) / 2.0
