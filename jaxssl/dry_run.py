"""``python -m jaxssl.main --config X --dry_run``: everything a run does before its first step, then a report,
and nothing written: the config checked, the data read, the schedules fitted to the run's length, the model
and its state built (warm-started where the config says), one batch made and the step compiled for it. The
report: parameters (all, and the encoder's), XLA's FLOPs per image, the compiled step's memory per device, the
step count and the schedules' lengths in steps.
"""

from __future__ import annotations

import math
import time

import jax
import ml_collections

from jaxssl import segment, tasks, train
from jaxssl.engine import speed
from jaxssl.ops import optim


def parameter_count(tree) -> int:
  """Elements in every array leaf of ``tree``."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def schedule_lengths(config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: float) -> dict[str, int]:
  """{what: steps} of the schedules counted in steps (``config`` with them in steps, the trainer's): the
  learning-rate warm-up as the run will use it, each frozen rule, the method's own (``step_schedules``)."""
  lengths = {"optim warm-up": optim.run_warmup(config, total_steps, steps_per_epoch)}
  lengths.update({f"optim.rules[{i}] frozen": rule.frozen_steps
                  for i, rule in enumerate(optim.rules_of(config)) if rule.frozen_steps})
  lengths.update({field: steps for field, (steps, _) in tasks.step_schedules(config).items()})
  return lengths


def dry_run(config: ml_collections.ConfigDict) -> dict:
  """Builds and compiles the run ``config`` describes, prints the report and returns it; raises what a run
  would (ConfigError, DataError, CheckpointError) before its first step. Touches no workdir."""
  train.check(config)
  p = train.prepare(config)
  pipeline = segment.input_pipeline(config, p.dataset, p.trainer, p.channels, p.mesh, position=0)
  with pipeline:
    batch = pipeline.next(timeout_s=config.data.read_timeout_s)
  step_fn = segment.make_step(config, p.trainer, p.state, p.mesh)
  print("compiling the step...", flush=True)
  t = time.perf_counter()
  compiled = step_fn.lower(p.state, batch).compile()
  compile_s = time.perf_counter() - t
  flops = speed.flops_per_device(compiled)
  memory = compiled.memory_analysis()
  per_device = None
  if memory is not None:
    per_device = sum(getattr(memory, f"{kind}_size_in_bytes", 0) for kind in ("argument", "output", "temp")) - \
        getattr(memory, "alias_size_in_bytes", 0)
  params = p.state.params
  report = {
      "parameters": parameter_count(params),
      "encoder_parameters": parameter_count(params["encoder"]) if "encoder" in params else 0,
      "gflop_per_image": (flops * jax.device_count() / config.train.batch_size / 1e9) if flops else None,
      "memory_per_device_gib": per_device / 2**30 if per_device else None,
      "compile_s": compile_s,
      "total_steps": p.total_steps,
      "steps_per_epoch": p.steps_per_epoch,
      "schedules": schedule_lengths(p.trainer.config, p.total_steps, p.steps_per_epoch),
  }
  print(describe(report, config), flush=True)
  return report


def describe(report: dict, config: ml_collections.ConfigDict) -> str:
  """The report as the console prints it."""
  def maybe(value, fmt: str) -> str:
    return format(value, fmt) if value is not None else "not reported by this backend"

  schedules = ", ".join(f"{what} {steps}" for what, steps in report["schedules"].items())
  return "\n".join([
      f"dry run: {config.method.name} with {config.model.encoder}, nothing written",
      f"  parameters: {report['parameters']:,} ({report['encoder_parameters']:,} in the encoder)",
      f"  step: {maybe(report['gflop_per_image'], '.3g')} GFLOP per image (XLA's count), "
      f"{maybe(report['memory_per_device_gib'], '.3g')} GiB per device, compiled in {report['compile_s']:.0f} s",
      f"  length: {report['total_steps']} steps of {config.train.batch_size} ({report['steps_per_epoch']} an "
      f"epoch); schedules in steps: {schedules}",
  ])
