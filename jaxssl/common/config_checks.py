"""Field checks shared by ``jaxssl.schema.validate`` (the schema's sections) and each method's own ``check(config)``.

Every failure is a ``ConfigError`` whose message is one line naming the field and its value:
``config.method.temperature=0.0: must be in [0.001, 1000]``.
"""

from __future__ import annotations

import math
from typing import Any

import ml_collections


class ConfigError(ValueError):
  """A config field with a bad value."""


def fail(field: str, value: Any, why: str):
  raise ConfigError(f"config.{field}={value!r}: {why}")


def get(config: ml_collections.ConfigDict, field: str) -> Any:
  """The value at a dotted ``field`` ("method.proj_dim")."""
  value = config
  for part in field.split("."):
    value = value[part]
  return value


def _is_int(value: Any) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def positive_int(config: ml_collections.ConfigDict, field: str) -> None:
  value = get(config, field)
  if not _is_int(value) or value <= 0:
    fail(field, value, "must be a positive integer")


def non_negative_int(config: ml_collections.ConfigDict, field: str, note: str = "") -> None:
  value = get(config, field)
  if not _is_int(value) or value < 0:
    fail(field, value, "must be a non-negative integer" + (f" ({note})" if note else ""))


def widths(config: ml_collections.ConfigDict, field: str) -> None:
  """A tuple of layer widths: positive integers (it may be empty: no hidden layer)."""
  value = get(config, field)
  if not isinstance(value, (tuple, list)) or not all(_is_int(v) and v > 0 for v in value):
    fail(field, value, "must be a tuple of positive integers (layer widths)")


def in_range(config: ml_collections.ConfigDict, field: str, low: float, high: float,
             closed_high: bool = True) -> None:
  value = get(config, field)
  inside = isinstance(value, (int, float)) and not isinstance(value, bool) and (
      low <= value <= high if closed_high else low <= value < high)
  if not inside:
    fail(field, value, f"must be in [{low:g}, {high:g}{']' if closed_high else ')'}")


def ordered_pair(config: ml_collections.ConfigDict, field: str, low: float, high: float,
                 closed_low: bool = True) -> None:
  """A (low, high) range of numbers inside [low, high] (or (low, high] with ``closed_low`` False): crop scales,
  block scales and aspect ratios."""
  value = get(config, field)
  numbers = isinstance(value, (tuple, list)) and len(value) == 2 and all(
      isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
  if not numbers or not ((low <= value[0] if closed_low else low < value[0]) and value[0] <= value[1] <= high):
    fail(field, value, f"need (low, high) with {low} {'<=' if closed_low else '<'} low <= high <= {high}")


def probability(config: ml_collections.ConfigDict, field: str) -> None:
  in_range(config, field, 0.0, 1.0)


def probabilities(config: ml_collections.ConfigDict, field: str, length: int) -> None:
  value = get(config, field)
  if not isinstance(value, (tuple, list)) or len(value) != length or not all(
      isinstance(v, (int, float)) and 0 <= v <= 1 for v in value):
    fail(field, value, f"must be {length} probabilities in [0, 1]")


def temperature(config: ml_collections.ConfigDict, field: str) -> None:
  """Softmax temperatures: logits of unit vectors over a temperature outside [1e-3, 1e3] overflow float32's
  exp or make every softmax uniform."""
  in_range(config, field, 1e-3, 1e3)


def finite(value: Any) -> bool:
  numbers = value if isinstance(value, (tuple, list)) else (value,)
  return not any(isinstance(v, float) and not math.isfinite(v) for v in numbers)


def multiple_of_batch(config: ml_collections.ConfigDict, field: str, allow_zero: bool = False) -> None:
  """A queue or bank size: a (positive, or with ``allow_zero`` non-negative) multiple of train.batch_size."""
  value, batch = get(config, field), config.train.batch_size
  if not _is_int(value) or value < (0 if allow_zero else 1) or value % batch:
    fail(field, value, f"must be a {'' if allow_zero else 'positive '}multiple of train.batch_size ({batch})"
         + (" (0: off)" if allow_zero else ""))
