"""When a run logs, evaluates and saves: one place for the periodic actions (as big_vision's periodic-action
helper), read by the loop and, for logging, by the jitted step (so metrics only logged are only computed then).
"""

from __future__ import annotations

import dataclasses

import ml_collections


@dataclasses.dataclass(frozen=True)
class Cadence:
  """Step counts are ``done``, the number of optimizer steps taken (1 after the first step)."""
  total_steps: int
  log_every: int
  eval_every: int = 0          # steps between periodic evaluations; 0: none
  checkpoint_every: int = 0    # steps between checkpoints; 0: only at the end (and on SIGTERM)
  final_eval: bool = True      # an evaluation after the last step

  @classmethod
  def of(cls, config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: int) -> "Cadence":
    eval_every = int(round(config.eval.every_epochs * steps_per_epoch)) if config.eval.every_epochs > 0 else 0
    return cls(total_steps=total_steps, log_every=max(1, config.train.log_every), eval_every=eval_every,
               checkpoint_every=config.train.checkpoint_every, final_eval=config.eval.at_end)

  def log(self, done):
    """Works on Python ints and on traced step counters (inside jit) alike."""
    return (done % self.log_every == 0) | (done == self.total_steps)

  def evaluate(self, done: int) -> bool:
    if not self.eval_every or done % self.eval_every or done >= self.total_steps:
      return False
    # A periodic evaluation less than half an interval before the end is left to the final one.
    return not (self.final_eval and self.total_steps - done < self.eval_every / 2)

  def checkpoint(self, done: int) -> bool:
    return done == self.total_steps or (self.checkpoint_every > 0 and done % self.checkpoint_every == 0)

  def any(self, done: int) -> bool:
    return bool(self.log(done)) or self.evaluate(done) or self.checkpoint(done)
