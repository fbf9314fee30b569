"""The losses of every registered method's tiny config, step by step: the check that a change to the step, the
Method contract or the models leaves the methods' training unchanged.

    python benchmarks/parity/method_losses.py --out before.json            # on the old code
    python benchmarks/parity/method_losses.py --compare before.json        # on the new code: a table of differences

Runs each method's smoke-test config (tests/tiny.py: synthetic 16x16 images, the method's small heads) for
``--steps`` steps on 8 simulated CPU devices, and records every step's metrics and, after the last step, the
sum of absolute values of the parameters (and of the EMA target's, where there is one).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tests"))

import jax                          # noqa: E402
import numpy as np                  # noqa: E402

from jaxssl import data, tasks
from jaxssl.engine import parallel, train_step  # noqa: E402
from tiny import tiny_config        # noqa: E402  (tests/tiny.py)


def run_method(name: str, steps: int) -> dict:
  config = tiny_config(name)
  config.train.num_steps = steps
  mesh = parallel.make_mesh(jax.devices()[:8])
  trainer = train_step.build(config, total_steps=steps)
  state = parallel.replicate(train_step.init_state(trainer, jax.random.key(0), 1), mesh)
  step = parallel.shard_step(train_step.make_per_device_step(trainer), mesh)
  pipeline = data.Pipeline(data.synthetic(64, size=16), config.train.batch_size, seed=0, prefetch=0)
  history = []
  for _ in range(steps):
    state, metrics = step(state, parallel.shard_batch(next(pipeline), mesh))
    history.append({k: float(v) for k, v in metrics.items() if not k.startswith("finite") and np.ndim(v) == 0})
  state = jax.device_get(state)
  abs_sum = lambda tree: float(sum(np.abs(np.asarray(x, np.float64)).sum() for x in jax.tree.leaves(tree)))
  return {"metrics": history, "params_abs_sum": abs_sum(state.params),
          "ema_abs_sum": None if state.ema_params is None else abs_sum(state.ema_params)}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="", help="comma-separated (default: every registered method)")
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--out", default="", help="write the figures to this JSON file")
  parser.add_argument("--compare", default="", help="a JSON file of an earlier run: print the differences")
  args = parser.parse_args()
  names = args.methods.split(",") if args.methods else tasks.names()
  results = {name: run_method(name, args.steps) for name in names}
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1))
  if not args.compare:
    for name, r in results.items():
      print(f"{name:14s} losses", " ".join(f"{m['loss']:.7f}" for m in r["metrics"]))
    return 0
  before = json.loads(pathlib.Path(args.compare).read_text())
  print("| method | steps | max abs loss difference | max abs metric difference | params abs-sum rel. diff |")
  print("|---|---|---|---|---|")
  worst = 0.0
  for name, r in results.items():
    if name not in before:
      print(f"| {name} | {args.steps} | (new) | | |")
      continue
    b = before[name]
    loss_diff = max(abs(x["loss"] - y["loss"]) for x, y in zip(r["metrics"], b["metrics"]))
    metric_diff = max(abs(x[k] - y[k]) for x, y in zip(r["metrics"], b["metrics"]) for k in y if k in x)
    param_diff = abs(r["params_abs_sum"] - b["params_abs_sum"]) / max(b["params_abs_sum"], 1e-30)
    worst = max(worst, loss_diff)
    print(f"| {name} | {len(r['metrics'])} | {loss_diff:.3g} | {metric_diff:.3g} | {param_diff:.3g} |")
  print(f"largest loss difference: {worst:.3g}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
