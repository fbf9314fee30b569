"""DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers", arXiv:2104.14294)."""

from __future__ import annotations

import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import byol_pair, check_momentum, ema_schedule
from jaxssl.methods.joint_embedding import Heads
from jaxssl.models import DINOHead
from jaxssl.ops import augment, losses


def _heads(config, axis_name, dtype):
  m = config.method
  return Heads(DINOHead(hidden_dims=tuple(m.proj_hidden_dims), bottleneck_dim=m.bottleneck_dim,
                        out_dim=m.out_dim, dtype=dtype))


def recipes(config):
  # Official: the two global crops are BYOL's asymmetric pair; local crops here take the first's settings.
  a = config.augment
  global_views = byol_pair(config)
  return augment.multicrop_recipes(global_views, a.local_size, a.num_local_crops, tuple(a.local_crop_scale))


def warmed_up(step, start: float, end: float, warmup_steps: int, hold_steps: int = 1):
  """The official linear warm-up from ``start`` to ``end``: ``np.linspace(start, end, W)`` over W =
  ``warmup_steps / hold_steps`` values, each held for ``hold_steps`` steps, then ``end`` (DINO's and iBOT's
  ``teacher_temp_schedule`` hold each value an epoch; DINOv2's holds it one step). ``end`` is reached at step
  ``warmup_steps - hold_steps``, the first step of the warm-up's last epoch; no warm-up (0 steps) is ``end``
  throughout."""
  if warmup_steps <= 0:
    return jnp.full((), end, jnp.float32) + 0.0 * step
  values = max(warmup_steps // max(hold_steps, 1), 1)
  progress = jnp.minimum((step // max(hold_steps, 1)) / max(values - 1, 1), 1.0)
  return start + progress * (end - start)


def step_schedules(config) -> dict[str, tuple[int, str]]:
  """The lengths in steps that must end within the run (``jaxssl.schema.schedules``): the teacher
  temperature's warm-up."""
  return {"method.teacher_temperature_warmup_steps": (int(config.method.teacher_temperature_warmup_steps),
                                                      "the teacher temperature warms up")}


def steps_from_epochs(config, steps_per_epoch: float) -> dict[str, int]:
  """The teacher temperature's warm-up given in epochs of the run's own data and batch (the official
  ``warmup_teacher_temp_epochs``; the ImageNet presets), as the step fields the loss reads: the hold is
  ``teacher_temperature_hold_epochs`` (at least one step) and the warm-up a whole number of holds. ``{}`` where
  the warm-up is given in steps (``teacher_temperature_warmup_epochs=0``)."""
  m = config.method
  if m.get("teacher_temperature_warmup_epochs", 0.0) <= 0:
    return {}
  hold = max(1, int(round(m.teacher_temperature_hold_epochs * steps_per_epoch)))
  holds = int(round(m.teacher_temperature_warmup_epochs * steps_per_epoch / hold))
  return {"method.teacher_temperature_warmup_steps": holds * hold, "method.teacher_temperature_hold_steps": hold}


def teacher_temperature(step, m):
  """The teacher temperature's warm-up from ``warmup_teacher_temperature`` to ``teacher_temperature``
  (``warmed_up`` over ``teacher_temperature_warmup_steps``, each value held ``teacher_temperature_hold_steps``)."""
  return warmed_up(step, m.warmup_teacher_temperature, m.teacher_temperature, m.teacher_temperature_warmup_steps,
                   m.teacher_temperature_hold_steps)


def check_warmup(config) -> None:
  """The teacher temperature's warm-up fields (DINO's and iBOT's)."""
  m = config.method
  config_checks.non_negative_int(config, "method.teacher_temperature_warmup_steps")
  config_checks.positive_int(config, "method.teacher_temperature_hold_steps")
  config_checks.in_range(config, "method.teacher_temperature_warmup_epochs", 0.0, float("inf"), closed_high=False)
  if m.teacher_temperature_warmup_epochs > 0 and not m.teacher_temperature_hold_epochs > 0:
    config_checks.fail("method.teacher_temperature_hold_epochs", m.teacher_temperature_hold_epochs,
                       "must be positive when method.teacher_temperature_warmup_epochs is "
                       f"({m.teacher_temperature_warmup_epochs}): each value of the warm-up is held that long")
  if m.teacher_temperature_warmup_steps % m.teacher_temperature_hold_steps:
    config_checks.fail("method.teacher_temperature_hold_steps", m.teacher_temperature_hold_steps,
                       "must divide method.teacher_temperature_warmup_steps "
                       f"({m.teacher_temperature_warmup_steps}): the warm-up holds each of its values that many steps")


def make(config) -> base.Method:
  """Student (all views) distils the EMA teacher (global views only); the teacher's centre is method state."""
  m = config.method

  def init_state(key, config):
    return {"center": jnp.zeros((m.out_dim,), jnp.float32)}

  def loss(online, target, method_state, labels, step, axis_name):
    temperature = teacher_temperature(step, m)
    value = losses.dino_loss(list(online.projections), list(target.projections), method_state["center"],
                             m.student_temperature, temperature, axis_name)
    return value, {"loss": value, "teacher_temperature": temperature}

  def update_state(method_state, online, target, step, axis_name):
    center = losses.dino_center(method_state["center"], list(target.projections), m.center_momentum, axis_name)
    return {"center": center}

  return joint_embedding.method("dino", _heads, recipes, loss, ema=ema_schedule(m.base_momentum),
                                init_state=init_state, update_state=update_state, target_views=(0, 1))


LAST_LAYER = "projector/last_layer(_norm)?(/.*)?"    # the weight-normalised directions (and learned norms)


def freeze_last_layer(steps: int, pattern: str = LAST_LAYER) -> tuple:
  """``optim.rules`` that freeze the head's last layer (the parameters ``pattern`` matches) for the first
  ``steps`` steps. Official (``freeze_last_layer=1``): its updates are cancelled during the first epoch, which
  stabilises early training; everything else trains. Put other rules before or after it in the tuple as
  needed."""
  return ((pattern, 1.0, 1.0, int(steps)),)


# The teacher temperature's warm-up in epochs of the run's data (0: the step fields above count it).
WARMUP_IN_EPOCHS = {"teacher_temperature_warmup_epochs": 0.0, "teacher_temperature_hold_epochs": 0.0}


def config_defaults() -> dict:
  """The last layer frozen for the first epoch: 1,251 steps at batch 1024 on ImageNet."""
  return {"optim.rules": freeze_last_layer(1251)}


def defaults():
  """Official defaults: head 2048-2048-256 then 65,536 outputs, student T 0.1, teacher T 0.04 -> 0.07 over 30
  epochs, one value per epoch (here in steps: 30 ImageNet epochs at batch 1024 = 37,530, each value held 1,251;
  ``teacher_temperature_warmup_epochs`` > 0 counts it in the run's own epochs instead, as the ImageNet configs
  do), centre momentum 0.9, EMA 0.996 -> 1."""
  return {"proj_hidden_dims": (2048, 2048), "bottleneck_dim": 256, "out_dim": 65536, "student_temperature": 0.1,
          "warmup_teacher_temperature": 0.04, "teacher_temperature": 0.07,
          "teacher_temperature_warmup_steps": 37530, "teacher_temperature_hold_steps": 1251,
          **WARMUP_IN_EPOCHS, "center_momentum": 0.9, "base_momentum": 0.996}


def check(config) -> None:
  config_checks.widths(config, "method.proj_hidden_dims")
  config_checks.positive_int(config, "method.bottleneck_dim")
  config_checks.positive_int(config, "method.out_dim")
  for field in ("student_temperature", "warmup_teacher_temperature", "teacher_temperature"):
    config_checks.temperature(config, f"method.{field}")
  check_warmup(config)
  config_checks.in_range(config, "method.center_momentum", 0.0, 1.0, closed_high=False)
  check_momentum(config)


def small(batch_size: int) -> dict:
  return {"method.proj_hidden_dims": (32,), "method.out_dim": 32, "method.bottleneck_dim": 8,
          "method.teacher_temperature_warmup_steps": 2, "method.teacher_temperature_hold_steps": 1,
          "optim.rules": freeze_last_layer(2),
          "augment.num_local_crops": 2, "augment.local_size": 8}
