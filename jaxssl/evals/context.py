"""What every evaluator reads: one evaluation of one train state (``Context``), and the run's compiled
functions that the run's evaluations share (``Compiled``: the encoder's features are compiled once per run)."""

from __future__ import annotations

import functools
import sys
import time
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import Mesh

from jaxssl.engine import evaluation


def say(message: str) -> None:
  """A progress line on stderr (process 0): evaluation passes can take minutes on a CPU."""
  if jax.process_index() == 0:
    print(f"evaluation: {message}", file=sys.stderr, flush=True)


class Compiled:
  """A run's jitted feature functions, built once: the encoder's (``embed``) and, built at first use, the whole
  model's outputs (a classifier's logits)."""

  def __init__(self, trainer, mesh: Mesh | None, stop: Callable[[], bool] | None):
    self.trainer, self.mesh, self.stop = trainer, mesh, stop
    self.apply_fn, _, self.preprocess = evaluation.encoder_fn(trainer, None)
    self.features_fn = evaluation.features_function(self.apply_fn, self.preprocess, mesh)
    self._outputs = None

  def embed(self, state, source, name: str = "", augment_key=None) -> tuple[np.ndarray, np.ndarray]:
    """The online encoder's features [N, D] and the labels [N] of ``source`` (a progress line every 30 s)."""
    start, shown = time.perf_counter(), [time.perf_counter()]

    def progress(done: int, total: int) -> None:
      now = time.perf_counter()
      if name and (now - shown[0] > 30 or done == total):
        shown[0] = now
        say(f"encoded {done}/{total} {name} images ({now - start:.0f} s)")

    return evaluation.embed(self.apply_fn, evaluation.encoder_variables(state), source, self.trainer.config.eval.batch_size,
                            self.mesh, self.preprocess, augment_key=augment_key, features_fn=self.features_fn,
                            progress=progress, stop=self.stop)

  def outputs(self, state, source) -> tuple[np.ndarray, np.ndarray]:
    """The model's own outputs (``model.apply(variables, images, train=False)``: a classifier's logits) and the
    labels of ``source``."""
    if self._outputs is None:
      model = self.trainer.model
      apply_fn = lambda variables, x: model.apply(variables, x, train=False)
      self._outputs = (apply_fn, evaluation.features_function(apply_fn, self.preprocess, self.mesh))
    apply_fn, outputs_fn = self._outputs
    return evaluation.embed(apply_fn, evaluation.encoder_variables(state), source, self.trainer.config.eval.batch_size,
                            self.mesh, self.preprocess, features_fn=outputs_fn, stop=self.stop)


class Context:
  """One evaluation of one train state on a dataset's eval splits.

  Attributes:
    compiled: the run's ``Compiled`` functions; ``trainer`` and ``config``: the run's.
    state: the train state (replicated, or sharded under FSDP); dataset: its ``eval_train`` and ``test`` splits.
    final: the run's final evaluation (or ``python -m jaxssl.evaluate``), where the slow evaluators run.
  """

  def __init__(self, compiled: Compiled, state: Any, dataset, final: bool):
    self.compiled, self.state, self.dataset, self.final = compiled, state, dataset, final
    self.trainer, self.config = compiled.trainer, compiled.trainer.config

  @functools.cached_property
  def features(self) -> dict[str, np.ndarray]:
    """Frozen features and labels of the eval_train and test splits, from one pass the evaluators share:
    ``{train,test}_{features,labels}``."""
    train_x, train_y = self.compiled.embed(self.state, self.dataset.eval_train, name="train")
    test_x, test_y = self.compiled.embed(self.state, self.dataset.test, name="test")
    return {"train_features": train_x, "train_labels": train_y, "test_features": test_x, "test_labels": test_y}
