"""Shared test utilities."""

import os
import pathlib

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"


def mesh(num_devices: int = 8) -> Mesh:
  return Mesh(np.asarray(jax.devices()[:num_devices]), (AXIS,))


def on_devices(fn, *arrays, num_devices: int = 8):
  """Runs fn(*local_shards, axis_name) under shard_map with every array split over its first axis."""
  m = mesh(num_devices)
  mapped = jax.shard_map(lambda *xs: fn(*xs, AXIS), mesh=m, in_specs=tuple(P(AXIS) for _ in arrays),
                         out_specs=P(), check_vma=False)
  placed = [jax.device_put(a, NamedSharding(m, P(AXIS))) for a in arrays]
  return jax.jit(mapped)(*placed)


def stand_in_commands(bin_dir: pathlib.Path, scripts: dict[str, str]) -> str:
  """Writes each ``{name: script}`` as an executable in ``bin_dir`` (a new folder) and returns a PATH that
  finds them first: stand-ins for cluster tools (srun, gcloud) and for python3."""
  bin_dir.mkdir()
  for name, script in scripts.items():
    (bin_dir / name).write_text(script)
    (bin_dir / name).chmod(0o755)
  return f"{bin_dir}:{os.environ['PATH']}"


def jpeg_splits(root: pathlib.Path, splits: dict[str, int], classes: int = 4) -> pathlib.Path:
  """Generated JPEG folders ``root/SPLIT/CLASS/*.jpg`` with ImageNet-like shapes, shorter side 40-64 px
  (``{"train": 24, "test": 8}``: that many images per split, spread over ``classes`` classes)."""
  from jaxssl.data import generate

  for seed, (split, count) in enumerate(splits.items()):
    generate.write_folder(str(root / split), count, classes=classes, seed=seed, shorter=(40, 64))
  return root


def synthetic_batches(config, steps: int) -> list[dict]:
  """The first ``steps`` global batches of 64 synthetic 16x16 images at the config's batch size."""
  from jaxssl import data

  pipeline = data.Pipeline(data.synthetic(64, size=16), config.train.batch_size, seed=0, prefetch=0)
  return [next(pipeline) for _ in range(steps)]


class Steps:
  """The tests' one step harness: a config's trainer, its initial state (seed 0) placed on the first
  ``num_devices`` devices (replicated, or with ``fsdp_min_size`` > 0 split: FSDP over arrays of at least that
  many elements) and the jitted step the run uses (``jaxssl.segment.make_step``'s two kinds).

      steps = Steps(config, num_devices=8)
      metrics = steps.run(batches)          # one dict of metrics per global batch; steps.state after them
  """

  def __init__(self, config, num_devices: int = 8, total_steps: int = 3, num_classes: int = 0, channels: int = 1,
               fsdp_min_size: int = 0):
    from jaxssl.engine import fsdp, parallel, train_step

    self.mesh = mesh(num_devices)
    self.trainer = train_step.build(config, total_steps=total_steps, num_classes=num_classes)
    self.initial = train_step.init_state(self.trainer, jax.random.key(0), channels)
    if fsdp_min_size:
      self.state = jax.device_put(self.initial, fsdp.state_shardings(self.initial, self.mesh, fsdp_min_size))
      self._step = fsdp.fsdp_step(self.trainer, self.initial, self.mesh, fsdp_min_size)
    else:
      self.state = parallel.replicate(self.initial, self.mesh)
      self._step = parallel.shard_step(train_step.make_per_device_step(self.trainer), self.mesh)

  def step(self, batch: dict) -> dict:
    """One step on a global batch (host arrays); the state moves on; returns the step's metrics."""
    from jaxssl.engine import parallel

    self.state, metrics = self._step(self.state, parallel.shard_batch(batch, self.mesh))
    return metrics

  def run(self, batches) -> list[dict]:
    return [self.step(batch) for batch in batches]


def run_steps(config, batches, num_devices: int = 8, fsdp_min_size: int = 0):
  """(final state, losses) of the config's steps on these batches, on ``num_devices`` devices: the state
  replicated, or with ``fsdp_min_size`` > 0 sharded (FSDP, arrays of at least that many elements). Every step's
  NaN guard must pass."""
  steps = Steps(config, num_devices, total_steps=len(batches), num_classes=10, fsdp_min_size=fsdp_min_size)
  losses = []
  for metrics in steps.run(batches):
    assert float(metrics["finite"]) == 1.0
    losses.append(float(metrics["loss"]))
  return steps.state, losses


def assert_refused(config, changes: dict, message: str, num_devices: int = 1) -> None:
  """``validate`` refuses ``config`` with ``changes`` ({"section.field": value}, set in place) in one ConfigError
  whose line matches the regular expression ``message``."""
  import pytest

  from jaxssl.schema import defaults, validate

  defaults.override(config, changes)
  with pytest.raises(validate.ConfigError, match=message):
    validate.validate(config, num_devices)
