"""Evaluators, chosen by the config (``config.eval.evaluators``), in the manner of big_vision's ``evaluators/``.

Each evaluator is a module with ``evaluate(ctx: Context) -> dict[str, float]`` (the scores it adds; ``{}`` when
it does not apply to this evaluation, e.g. the linear probe before the final one) and optionally
``check(config)`` (a ConfigError for a config it cannot evaluate). They share one pass of the encoder over the
eval splits (``Context.features``). Adding one is a file here and a line in ``EVALUATORS``; a run lists the
ones it wants by name, in the order their scores are printed.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable

from jax.sharding import Mesh

from jaxssl.common import config_checks
from jaxssl.evals import knn, linear_probe, online_probe, top1
from jaxssl.evals.context import Compiled, Context

EVALUATORS: dict[str, ModuleType] = {"knn": knn, "online_probe": online_probe, "linear_probe": linear_probe,
                                     "top1": top1}

_NAMES = {"top1": "top-1", "top5": "top-5", "knn_accuracy": "kNN", "online_probe_accuracy": "online probe",
          "linear_top1": "linear top-1", "linear_top5": "linear top-5"}


def register(name: str, module: ModuleType | Any) -> None:
  """Adds an evaluator defined outside this package (anything with ``evaluate(ctx)``)."""
  if not callable(getattr(module, "evaluate", None)):
    raise TypeError(f"evaluator {name!r} lacks evaluate(ctx) (see jaxssl.evals)")
  EVALUATORS[name] = module


def check(config) -> None:
  """``eval.evaluators`` names known evaluators, each of which can evaluate this config (ConfigError)."""
  names = config.eval.evaluators
  if isinstance(names, str) or not all(isinstance(n, str) for n in names):
    config_checks.fail("eval.evaluators", names, "must be a tuple of evaluator names, e.g. ('knn', 'online_probe')")
  for name in names:
    if name not in EVALUATORS:
      config_checks.fail("eval.evaluators", tuple(names), f"unknown evaluator {name!r}; known: "
                         f"{', '.join(map(repr, EVALUATORS))}")
    if hasattr(EVALUATORS[name], "check"):
      EVALUATORS[name].check(config)


class Evaluator:
  """A run's evaluations: the config's evaluators on one train state at a time. The encoder's feature function
  is compiled once, so every evaluation of the run after the first reuses its compilation."""

  def __init__(self, trainer, mesh: Mesh | None = None, stop: Callable[[], bool] | None = None):
    """``stop``: when it turns true (SIGTERM), an evaluation ends with ``jaxssl.data.Stopped`` at its next read."""
    self.compiled = Compiled(trainer, mesh, stop)

  def evaluate(self, state, dataset, final: bool = False, only: tuple[str, ...] | None = None) -> dict[str, float]:
    """The scores of ``only`` (default: ``eval.evaluators``) on ``state``; ``final``: the slow ones run too."""
    ctx = Context(self.compiled, state, dataset, final)
    scores: dict[str, float] = {}
    for name in self.compiled.trainer.config.eval.evaluators if only is None else only:
      scores.update(EVALUATORS[name].evaluate(ctx))
    return scores


def evaluate_state(trainer, state, dataset, mesh: Mesh | None = None, final: bool = True) -> dict[str, float]:
  """One evaluation of a train state (a run that evaluates often keeps an ``Evaluator``)."""
  return Evaluator(trainer, mesh).evaluate(state, dataset, final)


def summary(scores: dict[str, float]) -> str:
  """``kNN 81.20%, online probe 80.10%``: the known scores, as printed."""
  return ", ".join(f"{_NAMES[k]} {100 * v:.2f}%" for k, v in scores.items() if k in _NAMES)
