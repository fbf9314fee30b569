"""Registry of self-supervised methods. Adding one: a module here with make(config) and defaults()."""

from __future__ import annotations

from jaxssl.methods import (barlow_twins, byol, dino, meanshift, mocov3, nnclr, simclr, simsiam, supcon,
                            swav, vicreg, wmse)
from jaxssl.methods.base import Method, Outputs

_REGISTRY = {
    "simclr": simclr, "nnclr": nnclr, "meanshift": meanshift, "supcon": supcon,  # deep metric learning
    "byol": byol, "simsiam": simsiam, "dino": dino,                       # self-distillation
    "vicreg": vicreg, "barlow_twins": barlow_twins, "wmse": wmse, "swav": swav,  # canonical correlation
    "mocov3": mocov3,
}


def names() -> list[str]:
  return sorted(_REGISTRY)


def get(config) -> Method:
  """The Method named by ``config.method.name``."""
  name = config.method.name
  if name not in _REGISTRY:
    raise KeyError(f"unknown method {name!r}; known: {names()}")
  return _REGISTRY[name].make(config)


def optional_sizes(name: str) -> tuple[str, ...]:
  """The method's size fields (queue_size, bank_size) that may be 0 to switch the feature off."""
  return getattr(_REGISTRY[name], "OPTIONAL_SIZES", ())


def defaults(name: str) -> dict:
  """The method's paper defaults (head sizes, temperatures, momentum)."""
  return _REGISTRY[name].defaults()


__all__ = ["Method", "Outputs", "get", "names", "defaults", "optional_sizes"]
