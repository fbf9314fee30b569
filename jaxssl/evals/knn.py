"""Weighted kNN on the frozen features (Wu et al. 2018, as solo-learn and lightly report it): cosine similarity,
``eval.knn_k`` neighbours, temperature ``eval.knn_temperature``."""

from __future__ import annotations

from jaxssl.engine import evaluation
from jaxssl.evals.context import Context, say


def evaluate(ctx: Context) -> dict[str, float]:
  f, ev = ctx.features, ctx.config.eval
  say(f"kNN (k={ev.knn_k}) of {len(f['test_labels'])} test images among {len(f['train_labels'])}")
  return {"knn_accuracy": evaluation.knn_accuracy_of_features(f, ctx.dataset.num_classes, ev)}
