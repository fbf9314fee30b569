"""Schedules counted in steps, against the run's own length: what a shortened run (``train.num_steps=30``, how
everyone tries a config first) does to them, said in one line or refused in one line, before anything is
written.

- The learning-rate warm-up (``optim.warmup_steps``, or ``optim.warmup_epochs`` of the run's own data and
  batch) that would not end before the run does is cut to ``optim.SHORT_RUN_WARMUP_SHARE`` of the run, with a
  note (``notes``): otherwise the run would end at its peak learning rate.
- A parameter frozen for the whole run (``optim.rules``' frozen_steps: DINO's and iBOT's last layers), or a
  method's warm-up that would not end (its module's optional ``step_schedules(config)``: DINO's and iBOT's
  teacher temperature, SwAV's frozen prototypes), is refused (``check``), naming the field and what to set.

Schedules given in epochs (``optim.warmup_epochs``, rules with ``optim.frozen_unit="epochs"``, DINO's and iBOT's
``teacher_temperature_warmup_epochs``) count the run's own epochs, of its data and batch: ``in_steps`` turns them
into the step fields the step reads once the run knows its data, so a preset made for ImageNet schedules a
folder of 10,000 images by that folder's epochs, not by 1.28M images'.

A run of the length its config was made for is unchanged.
"""

from __future__ import annotations

import ml_collections

from jaxssl import tasks
from jaxssl.common.config_checks import fail
from jaxssl.ops import optim


def in_steps(config: ml_collections.ConfigDict, steps_per_epoch: float) -> ml_collections.ConfigDict:
  """A copy of ``config`` whose schedules in epochs are counted in steps of ``steps_per_epoch`` each (the config
  the step is built from; the workdir records the config as written)."""
  resolved = config.copy_and_resolve_references()
  with resolved.unlocked():
    if config.optim.get("frozen_unit", "steps") == "epochs":
      resolved.optim.rules = optim.rules_in_steps(config, steps_per_epoch)
      resolved.optim.frozen_unit = "steps"
    for field, steps in tasks.steps_from_epochs(config, steps_per_epoch).items():
      section, name = field.split(".")
      resolved[section][name] = steps
  return resolved


def in_epochs_notes(config: ml_collections.ConfigDict, resolved: ml_collections.ConfigDict,
                    steps_per_epoch: float) -> list[str]:
  """One line saying what ``in_steps`` counted, where it counted anything."""
  counted = []
  if config.optim.get("frozen_unit", "steps") == "epochs":
    counted += [f"optim.rules[{i}] frozen {rule[3]:g} epochs = {resolved.optim.rules[i][3]} steps"
                for i, rule in enumerate(config.optim.rules) if len(rule) == 4]
  for field, steps in tasks.steps_from_epochs(config, steps_per_epoch).items():
    epochs_field = field.replace("_steps", "_epochs")
    section, name = epochs_field.split(".")
    counted.append(f"{epochs_field}={config[section][name]:g} = {steps} steps")
  if not counted:
    return []
  return [f"schedules in epochs of this run's data ({steps_per_epoch:g} steps each): {'; '.join(counted)}"]


def check(config: ml_collections.ConfigDict, total_steps: int) -> None:
  """ConfigError for a schedule that cannot fit a run of ``total_steps`` steps."""
  for i, rule in enumerate(optim.rules_of(config)):
    if rule.frozen_steps >= total_steps:
      fail(f"optim.rules[{i}]", tuple(config.optim.rules[i]), f"freezes the parameters it matches for "
           f"{rule.frozen_steps} steps, the whole run of {total_steps}: they would never train; give it fewer "
           f"frozen steps (its last entry) or train longer")
  for field, (steps, what) in tasks.step_schedules(config).items():
    if steps >= total_steps:
      fail(field, steps, f"{what} for {steps} steps, not fewer than the run's {total_steps}, so that never "
           f"ends; set it below {total_steps} for this run")


def notes(config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: float) -> list[str]:
  """One line for each schedule the run cuts to fit (the learning-rate warm-up)."""
  asked = optim.warmup_steps(config, steps_per_epoch)
  if asked < total_steps:                        # optim.run_warmup keeps it
    return []
  used = optim.run_warmup(config, total_steps, steps_per_epoch)
  field = (f"optim.warmup_epochs={config.optim.warmup_epochs:g}"
           if config.optim.warmup_epochs > 0 and steps_per_epoch > 0 else f"optim.warmup_steps={asked}")
  return [f"{field} is {asked} steps, not shorter than the run ({total_steps} steps): the learning rate warms up "
          f"over the first {used} instead ({optim.SHORT_RUN_WARMUP_SHARE:.0%} of the run); set "
          "optim.warmup_steps (with optim.warmup_epochs=0) to choose"]
