"""The offline linear probe's top-1 / top-5: a linear classifier trained on the frozen features (``eval.linear_*``;
with ``eval.linear_augment`` the encoder runs again every epoch on cropped and flipped images). It takes minutes,
so it runs only at the final evaluation with ``eval.linear_probe``, and in ``python -m jaxssl.evaluate``."""

from __future__ import annotations

import time

import jax

from jaxssl.engine import evaluation
from jaxssl.evals.context import Context, say


def evaluate(ctx: Context) -> dict[str, float]:
  if not (ctx.final and ctx.config.eval.linear_probe):
    return {}
  scores = probe(ctx)
  return {"linear_top1": scores["top1"], "linear_top5": scores["top5"]}


def probe(ctx: Context) -> dict[str, float]:
  """``{"top1", "top5"}`` of the probe on the context's state, whether or not the evaluation is final."""
  f, ev, seed = ctx.features, ctx.config.eval, ctx.config.seed
  augmented = None
  if ev.linear_augment:
    key = jax.random.key(seed + 17)
    augmented = lambda e: ctx.compiled.embed(ctx.state, ctx.dataset.eval_train,
                                             augment_key=jax.random.fold_in(key, e))
  say(f"linear probe, {ev.linear_epochs} epochs on {len(f['train_labels'])} frozen features"
      + (" (augmented: the encoder runs every epoch)" if ev.linear_augment else ""))
  start, shown = time.perf_counter(), [time.perf_counter()]

  def epoch_with_progress(e: int):
    # Called before each epoch after the first: a line every 30 s, since a long probe takes minutes.
    now = time.perf_counter()
    if now - shown[0] > 30:
      shown[0] = now
      say(f"linear probe epoch {e + 1}/{ev.linear_epochs} ({now - start:.0f} s)")
    return augmented(e) if augmented is not None else (f["train_features"], f["train_labels"])

  return evaluation.linear_probe_of_features(f, ctx.dataset.num_classes, ev, seed, epoch_with_progress)
