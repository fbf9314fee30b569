"""Registry of self-supervised methods: name -> module with make(config), defaults() and check(config), and
optionally config_defaults(), check_devices(config, num_devices), small(batch_size) (the tests' overrides) and
reconstruction(config) (masked methods that predict pixels: the picture ``python -m jaxssl.plot`` draws); the
contract is in ``jaxssl.methods.base``. Adding a method is a module here, a config in configs/ and one line
below. Supervised fine-tuning is a task, not a method: ``jaxssl.tasks``."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import ml_collections

from jaxssl.methods import (barlow_twins, byol, dino, dinov2, ibot, ijepa, lejepa, mae, meanshift, mocov2, mocov3,
                            msn, nnclr, simclr, simmim, simsiam, supcon, swav, vicreg, wmse)
from jaxssl.methods.base import LossOutput, Method, StepInputs, Variables

_REGISTRY: dict[str, Any] = {
    "simclr": simclr, "nnclr": nnclr, "meanshift": meanshift, "supcon": supcon,  # deep metric learning
    "mocov2": mocov2,
    "byol": byol, "simsiam": simsiam, "dino": dino,                       # self-distillation
    "vicreg": vicreg, "barlow_twins": barlow_twins, "wmse": wmse, "swav": swav,  # canonical correlation
    "lejepa": lejepa,                                                    # an isotropic Gaussian regulariser
    "mocov3": mocov3,
    "mae": mae, "simmim": simmim, "ibot": ibot, "ijepa": ijepa,           # masked image modeling
    "dinov2": dinov2,                                                    # self-distillation with masking
    "msn": msn,                                                          # masked siamese, prototypes
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


def module(name: str) -> Any:
  """The method module registered as ``name``."""
  if name not in _REGISTRY:
    raise KeyError(f"unknown method {name!r}; known: {names()}")
  return _REGISTRY[name]


def get(config: ml_collections.ConfigDict) -> Method:
  """The Method named by ``config.method.name``."""
  return module(config.method.name).make(config)


def defaults(name: str) -> dict:
  """The method's config fields and their paper defaults (head sizes, temperatures, momentum)."""
  return module(name).defaults()


def optional(source: Any, hook: str, absent: Any, *args) -> Any:
  """``source.hook(*args)`` where the module defines the optional hook, else ``absent``."""
  return getattr(source, hook)(*args) if hasattr(source, hook) else absent


def check_module(source: Any, config: ml_collections.ConfigDict, num_devices: int) -> None:
  """A module's validation of its fields (raises config_checks.ConfigError): its ``check(config)``, then, where
  it has one, ``check_devices(config, num_devices)`` for what depends on the devices the batch is split over."""
  source.check(config)
  optional(source, "check_devices", None, config, num_devices)


def small(name: str, batch_size: int) -> dict[str, Any]:
  """Dotted config overrides that make the method quick to smoke-test (small heads, sizes for the batch); none
  where the method's module has no ``small``."""
  return optional(module(name), "small", {}, batch_size)


def reconstruction(config: ml_collections.ConfigDict):
  """(model, online, images, keys) -> (removed [N, H, W, 1], reconstruction [N, H, W, C]) for a masked method
  that predicts pixels (its module's optional ``reconstruction(config)``: MAE), or None."""
  return optional(module(config.method.name), "reconstruction", None, config)


__all__ = ["LossOutput", "Method", "StepInputs", "Variables", "defaults", "get", "module", "names", "register",
           "small"]
