"""A classifier's test top-1 / top-5 from its own logits (the ``classifier`` task, ``jaxssl.tasks``)."""

from __future__ import annotations

from jaxssl import tasks
from jaxssl.common import config_checks
from jaxssl.engine import evaluation
from jaxssl.evals.context import Context, say


def check(config) -> None:
  if not tasks.classes(config):
    config_checks.fail("eval.evaluators", tuple(config.eval.evaluators), f"'top1' scores a classifier's logits; "
                       f"method.name={config.method.name!r} has none (use 'knn', 'online_probe', 'linear_probe')")


def evaluate(ctx: Context) -> dict[str, float]:
  logits, labels = ctx.compiled.outputs(ctx.state, ctx.dataset.test)
  say(f"classifier top-1 on {len(labels)} test images")
  return {"top1": evaluation.topk_accuracy(logits, labels, 1), "top5": evaluation.topk_accuracy(logits, labels, 5)}
