"""Registry of self-supervised methods: name -> module with make(config), defaults(), check(config) and
small(batch_size) (the contract in ``jaxssl.methods.base``). Adding a method is a module here, a config in
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
  """Adds a method defined outside this package (anything with make, defaults, check and small)."""
  missing = [f for f in ("make", "defaults", "check", "small") if not callable(getattr(module, f, None))]
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


def check(config: ml_collections.ConfigDict) -> None:
  """The method's own validation of its fields (raises config_checks.ConfigError)."""
  _module(config.method.name).check(config)


def small(name: str, batch_size: int) -> dict[str, Any]:
  """Dotted config overrides that make the method quick to smoke-test (small heads, sizes for the batch)."""
  return _module(name).small(batch_size)


def _module(name: str):
  if name not in _REGISTRY:
    raise KeyError(f"unknown method {name!r}; known: {names()}")
  return _REGISTRY[name]


__all__ = ["LossOutput", "Method", "StepInputs", "Variables", "check", "config_defaults", "defaults", "get", "names",
           "register", "small"]
