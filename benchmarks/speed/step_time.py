"""Training-step time of the default configs on synthetic 28x28x1 data (no dataset needed).

    python benchmarks/speed/step_time.py [--methods simclr,byol,vicreg] [--steps 6] [--config.x=y style overrides]

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

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from jaxssl.common import xla_flags  # noqa: E402

xla_flags.use_eigen_convolutions_on_cpu()    # as python -m jaxssl.main does

import jax  # noqa: E402
from benchmarks.speed import throughput  # noqa: E402


def _override(config, assignment):
  key, value = assignment.split("=", 1)
  *path, last = key.split(".")
  node = config
  for part in path:
    node = node[part]
  node[last] = ast.literal_eval(value)


def step_time(config, steps: int) -> float:
  return throughput.median_step_seconds(config, steps, num_classes=0)    # no online probe, as before


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
