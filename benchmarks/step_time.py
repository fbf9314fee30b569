"""Training-step time of the default configs on synthetic 28x28x1 data (no dataset needed).

    python benchmarks/step_time.py [--methods simclr,byol,vicreg] [--steps 6] [--config.x=y style overrides]

For each method: compile, then time ``--steps`` full steps (on-device augmentation, forward, backward, optimizer,
EMA) and print the median seconds per step and images per second as a Markdown table. Overrides apply to every
method, e.g. ``method.proj_hidden_dims='(1024,1024)'``.
"""

import argparse
import ast
import importlib
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxssl import data, train  # noqa: E402


def _override(config, assignment):
  key, value = assignment.split("=", 1)
  *path, last = key.split(".")
  node = config
  for part in path:
    node = node[part]
  node[last] = ast.literal_eval(value)


def step_time(config, steps: int) -> float:
  source = data.synthetic((steps + 1) * config.train.batch_size, size=config.augment.size)
  mesh = train.make_mesh()
  trainer = train.build(config, total_steps=100)
  state = train.replicate(train.init_state(trainer, jax.random.key(0), 1), mesh)
  step = train.shard_step(train.make_per_device_step(trainer), mesh)
  batches = data.Pipeline(source, config.train.batch_size, seed=0, prefetch=0)
  state, metrics = step(state, train.shard_batch(next(batches), mesh))      # compile
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    batch = train.shard_batch(next(batches), mesh)
    start = time.perf_counter()
    state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="simclr,byol,vicreg")
  parser.add_argument("--steps", type=int, default=6)
  parser.add_argument("overrides", nargs="*", help="config overrides like method.proj_dim=1024")
  args = parser.parse_args()
  print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__}, "
        f"{jax.device_count()} device(s)\n")
  print("| method | overrides | s / step | images / s |")
  print("|---|---|---|---|")
  for name in args.methods.split(","):
    config = importlib.import_module(f"configs.{name}").get_config()
    for assignment in args.overrides:
      _override(config, assignment)
    seconds = step_time(config, args.steps)
    print(f"| {name} | {' '.join(args.overrides)} | {seconds:.3f} | {config.train.batch_size / seconds:.0f} |",
          flush=True)


if __name__ == "__main__":
  main()
