"""The online probe's test top-1: the linear classifier trained inside the step on stop-gradient features
(solo-learn's online classifier, ``eval.online_probe``); nothing when the run has none."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxssl.engine import evaluation
from jaxssl.evals.context import Context


def evaluate(ctx: Context) -> dict[str, float]:
  if ctx.state.probe_params is None or ctx.trainer.probe is None:
    return {}
  f = ctx.features
  logits = np.asarray(ctx.trainer.probe.apply(ctx.state.probe_params, jnp.asarray(f["test_features"])))
  return {"online_probe_accuracy": evaluation.topk_accuracy(logits, f["test_labels"], 1)}
