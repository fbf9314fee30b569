"""Registry of self-supervised methods: name -> module with make(config), defaults() and check(config), and
optionally config_defaults(), check_devices(config, num_devices) and small(batch_size) (the tests' overrides;
the contract in ``jaxssl.methods.base``). Adding a method is a module here, a config in
configs/ and one line below."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import ml_collections

from jaxssl.methods import (barlow_twins, byol, classifier, dino, ibot, ijepa, mae, meanshift, mocov3, nnclr, simclr, simsiam,
                            supcon, swav, vicreg, wmse)
from jaxssl.methods.base import LossOutput, Method, StepInputs, Variables

_REGISTRY: dict[str, Any] = {
    "simclr": simclr, "nnclr": nnclr, "meanshift": meanshift, "supcon": supcon,  # deep metric learning
    "byol": byol, "simsiam": simsiam, "dino": dino,                       # self-distillation
    "vicreg": vicreg, "barlow_twins": barlow_twins, "wmse": wmse, "swav": swav,  # canonical correlation
    "mocov3": mocov3,
    "mae": mae, "ibot": ibot, "ijepa": ijepa,                             # masked image modeling
    "classifier": classifier,                 # supervised: fine-tuning a pretrained encoder, or from scratch
}


def register(name: str, module: ModuleType | Any) -> None:
  """Adds a method defined outside this package (anything with make, defaults and check; small, the test
  overrides, is optional)."""
  missing = [f for f in ("make", "defaults", "check") if not callable(getattr(module, f, None))]
  if missing:
    raise TypeError(f"method {name!r} lacks {', '.join(missing)} (see jaxssl.methods.base)")
  _REGISTRY[name] = module


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(config: ml_collections.ConfigDict) -> Method:
  """The Method named by ``config.method.name``."""
  return _module(config.method.name).make(config)


def defaults(name: str) -> dict:
  """The method's config fields and their paper defaults (head sizes, temperatures, momentum)."""
  return _module(name).defaults()


def config_defaults(name: str) -> dict[str, Any]:
  """Dotted defaults the method sets outside ``config.method`` (optional ``config_defaults()`` of its module:
  MAE needs a ViT and AdamW); ``{}`` for most."""
  module = _module(name)
  return module.config_defaults() if hasattr(module, "config_defaults") else {}


def check(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """The method's own validation of its fields (raises config_checks.ConfigError): its ``check(config)``, then,
  where the module has one, ``check_devices(config, num_devices)`` for what depends on the devices the batch is
  split over."""
  module = _module(config.method.name)
  module.check(config)
  if hasattr(module, "check_devices"):
    module.check_devices(config, num_devices)


def small(name: str, batch_size: int) -> dict[str, Any]:
  """Dotted config overrides that make the method quick to smoke-test (small heads, sizes for the batch); none
  where the method's module has no ``small``."""
  module = _module(name)
  return module.small(batch_size) if hasattr(module, "small") else {}


def _module(name: str):
  if name not in _REGISTRY:
    raise KeyError(f"unknown method {name!r}; known: {names()}")
  return _REGISTRY[name]


__all__ = ["LossOutput", "Method", "StepInputs", "Variables", "check", "config_defaults", "defaults", "get", "names",
           "register", "small"]
