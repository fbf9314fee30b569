"""What the argparse commands (``jaxssl.evaluate``, ``jaxssl.plot``) share with the absl ones (``jaxssl.main``,
``jaxssl.finetune``): bad input is one line on stderr and exit code 2, and a JAX backend that cannot start is
bad input too (``JAX_PLATFORMS=gpu`` on a machine without one)."""

from __future__ import annotations

import argparse
import math
import os
import sys


class ArgumentParser(argparse.ArgumentParser):
  """argparse with its errors as one line (``error: ...``, exit code 2) instead of the usage and the message."""

  def error(self, message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)

  def parse_for_jax(self, argv: list[str] | None = None) -> argparse.Namespace:
    """``parse_args``, then JAX's backend started: a backend that cannot start is one line, exit code 2, too."""
    args = self.parse_args(argv)
    problem = backend_problem()
    if problem:
      self.error(problem)
    return args


def _int_at_least(minimum: int, words: str):
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f"{value} must be {words}")
    return value
  return parse


positive_int = _int_at_least(1, "positive")                 # an argparse type: an integer above 0
non_negative_int = _int_at_least(0, "non-negative")         # an argparse type: a checkpoint step


def positive_float(text: str) -> float:
  """An argparse type: a finite number above 0 (a learning rate)."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
  if not (math.isfinite(value) and value > 0):
    raise argparse.ArgumentTypeError(f"{text} must be a finite number above 0")
  return value


def backend_problem() -> str | None:
  """Why JAX's backend cannot start, as one line naming JAX_PLATFORMS when it is set; None when it starts."""
  import jax

  try:
    jax.devices()
  except RuntimeError as e:
    platforms = os.environ.get("JAX_PLATFORMS")
    where = f"JAX_PLATFORMS={platforms!r}: " if platforms else ""
    return f"{where}{' '.join(str(e).split())}"
  return None
