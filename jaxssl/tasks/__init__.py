"""What a run trains, by ``config.method.name``: a self-supervised method (``jaxssl.methods``' registry) or a
supervised task on the labels (``classifier``: fine-tuning a pretrained encoder, or training it from scratch).

Both are handed to the engine as the same training contract (``jaxssl.methods.base.Method``: model, views, loss,
state, EMA). What only a task has lives in its module, read here through optional hooks:

    classes(config) -> int          the model predicts that many classes (its logits are scored, not kNN)
    GLOBAL_POOL = True              it reads only the encoder's pooled features (``model.pool="global"``)

and what only some methods have, through ``jaxssl.methods``' own optional hooks (``reconstruction``, ...).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import ml_collections

from jaxssl import methods
from jaxssl.methods.base import Method
from jaxssl.tasks import classifier

_TASKS: dict[str, ModuleType] = {"classifier": classifier}


def names() -> list[str]:
  """Every name ``config.method.name`` takes: the self-supervised methods and the supervised tasks."""
  return sorted(set(methods.names()) | set(_TASKS))


def module(name: str) -> Any:
  """The module that defines ``name`` (a task here, or a registered method)."""
  return _TASKS[name] if name in _TASKS else methods.module(name)


def get(config: ml_collections.ConfigDict) -> Method:
  """The training contract of ``config.method.name``."""
  return module(config.method.name).make(config)


def defaults(name: str) -> dict:
  """The ``config.method`` fields of ``name`` and their defaults."""
  return module(name).defaults()


def config_defaults(name: str) -> dict[str, Any]:
  """Dotted defaults ``name`` sets outside ``config.method`` (its module's optional ``config_defaults()``)."""
  return methods.optional(module(name), "config_defaults", {})


def check(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """``name``'s own validation: its ``check(config)``, then its optional ``check_devices(config, num_devices)``."""
  methods.check_module(module(config.method.name), config, num_devices)


def small(name: str, batch_size: int) -> dict[str, Any]:
  """The tests' dotted overrides that make ``name`` quick (its module's optional ``small(batch_size)``)."""
  return methods.optional(module(name), "small", {}, batch_size)


def classes(config: ml_collections.ConfigDict) -> int:
  """The number of classes the model predicts (a supervised task), or 0 for a self-supervised method."""
  return methods.optional(module(config.method.name), "classes", 0, config)


def step_schedules(config: ml_collections.ConfigDict) -> dict[str, tuple[int, str]]:
  """{field: (steps, what happens during them)} of the schedules counted in steps that must end within the run
  (the module's optional ``step_schedules(config)``: DINO's and iBOT's teacher warm-up, SwAV's frozen
  prototypes); ``{}`` for the others."""
  return methods.optional(module(config.method.name), "step_schedules", {}, config)


def steps_from_epochs(config: ml_collections.ConfigDict, steps_per_epoch: float) -> dict[str, int]:
  """{step field: steps} for the method's schedules given in epochs of the run's data (the module's optional
  ``steps_from_epochs(config, steps_per_epoch)``: DINO's and iBOT's teacher warm-up); ``{}`` for the others."""
  return methods.optional(module(config.method.name), "steps_from_epochs", {}, config, steps_per_epoch)


def view_masks(config: ml_collections.ConfigDict, keys) -> list | None:
  """For a masked method's pictures: per view, [N, L] with 1 where a patch is hidden and predicted, 0.5 hidden
  only, 0 seen (the module's optional ``view_masks(config, keys)``; None for a view without masks); None for the
  methods that mask nothing."""
  return methods.optional(module(config.method.name), "view_masks", None, config, keys)


def global_pool(name: str) -> bool:
  """Whether ``name`` reads only the encoder's pooled features, so a ViT may pool as MAE fine-tunes (no final
  norm on the tokens); the self-supervised methods read the normed tokens."""
  return bool(getattr(module(name), "GLOBAL_POOL", False))


def reconstruction(config: ml_collections.ConfigDict):
  """``name``'s picture of its reconstructions (``jaxssl.methods.reconstruction``), or None."""
  return methods.reconstruction(config) if config.method.name not in _TASKS else None
