"""kNN accuracy of the default configs (small ResNet, Fashion-MNIST) against the random-init encoder.

    python benchmarks/accuracy/knn_default.py [--methods simclr,byol,vicreg] [--epochs 1.0]

Runs each config's default schedule through jaxssl.train.run and prints a Markdown table: kNN test accuracy
(cosine, k=200, T=0.1) of the trained encoder, of the same encoder at random initialisation (same seed, so the
same weights for every method), training wall time (compilation included), steps, and the first and last logged
loss.
"""

import argparse
import importlib
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402

from jaxssl import train  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="simclr,byol,vicreg")
  parser.add_argument("--epochs", type=float, default=None, help="override train.num_epochs")
  args = parser.parse_args()

  rows, failures, random_init = [], [], None
  for name in args.methods.split(","):
    config = importlib.import_module(f"configs.{name}").get_config()
    if args.epochs is not None:
      config.train.num_epochs = args.epochs
    config.eval.knn_at_init = random_init is None        # identical weights for every method: measure once
    try:
      with tempfile.TemporaryDirectory() as workdir:
        results = train.run(config, workdir)
    except Exception as e:  # noqa: BLE001 -- one method's failure must not hide the others' rows
      print(f"{name} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
      failures.append(name)
      continue
    random_init = results.get("knn_random_init", random_init)
    rows.append((name, config.train.num_epochs, results["steps"], results["train_seconds"],
                 results["knn_accuracy"], results["first_loss"], results["final_loss"]))

  print(f"\n{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, jax {jax.__version__}, {jax.device_count()} device(s)\n")
  print("| method | epochs | steps | train s | loss first -> last logged | kNN top-1 | random-init encoder | gain |")
  print("|---|---|---|---|---|---|---|---|")
  for name, epochs, steps, seconds, accuracy, first, last in rows:
    print(f"| {name} | {epochs:g} | {steps} | {seconds:.0f} | {first:.4g} -> {last:.4g} | {100 * accuracy:.2f}% | "
          f"{100 * random_init:.2f}% | {100 * (accuracy - random_init):+.2f} |")
  for name in failures:
    print(f"| {name} | failed (see stderr) | | | | | | |")


if __name__ == "__main__":
  main()
