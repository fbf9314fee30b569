"""Accuracy after a fixed pretraining budget: kNN and linear probe against a random encoder and raw pixels.

    python -m jaxssl.data.prepare fashion_mnist --from /usr/share/datasets/fashion-mnist   # once
    python benchmarks/accuracy.py [--methods simclr,byol,vicreg] [--epochs 3] [--linear_epochs 30]

Each method's default config (small ResNet, Fashion-MNIST through TFDS) is pretrained for ``--epochs`` with a
kNN evaluation after every epoch (so one run gives the accuracy-vs-budget curve of that schedule), then the
frozen encoder gets an offline linear probe. Baselines: the same encoder at random initialisation, and raw
pixels, each with the same kNN (cosine, k=200, T=0.1) and linear probe. Prints Markdown tables.
"""

import argparse
import ast
import importlib
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxssl import data, evaluation, parallel, train, train_step  # noqa: E402


def baselines(config, linear_epochs: int) -> dict[str, dict[str, float]]:
  """kNN and linear probe of the random-init encoder and of raw pixels."""
  dataset = data.load(config.data)
  mesh = parallel.make_mesh()
  trainer = train_step.build(config, total_steps=1)
  state = parallel.replicate(train_step.init_state(trainer, jax.random.key(config.seed), 1), mesh)
  config.eval.linear_epochs = linear_epochs
  random_init = evaluation.evaluate_state(trainer, state, dataset, mesh, linear=True)

  train_x, train_y = dataset.eval_train.all()
  test_x, test_y = dataset.test.all()
  flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
  pixels = {"knn_accuracy": evaluation.knn_accuracy(flat(train_x), train_y, flat(test_x), test_y,
                                                  dataset.num_classes)}
  probe = evaluation.linear_probe_accuracy(flat(train_x), train_y, flat(test_x), test_y, dataset.num_classes,
                                         epochs=linear_epochs)
  pixels["linear_top1"], pixels["linear_top5"] = probe["top1"], probe["top5"]
  return {"random-init encoder": random_init, "raw pixels": pixels}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="simclr,byol,vicreg")
  parser.add_argument("--epochs", type=float, default=3.0)
  parser.add_argument("--linear_epochs", type=int, default=30)
  parser.add_argument("--baselines_only", action="store_true",
                      help="only the random-init encoder and raw pixels (e.g. of another encoder, by override)")
  parser.add_argument("overrides", nargs="*", help="config overrides like data.data_dir=/path")
  args = parser.parse_args()

  def config_for(name):
    config = importlib.import_module(f"configs.{name}").get_config()
    for assignment in args.overrides:
      key, value = assignment.split("=", 1)
      *path, last = key.split(".")
      node = config
      for part in path:
        node = node[part]
      node[last] = ast.literal_eval(value) if isinstance(node[last], (tuple, list)) else type(node[last])(value)
    return config

  names = args.methods.split(",")
  start = time.perf_counter()
  base = baselines(config_for(names[0]), args.linear_epochs)
  print(f"baselines: {base} ({time.perf_counter() - start:.0f} s)", flush=True)
  if args.baselines_only:
    return

  runs = {}
  for name in names:
    config = config_for(name)
    config.train.num_epochs = args.epochs
    config.eval.every_epochs = 1.0
    config.eval.knn_at_init = False
    config.eval.linear_probe = True
    config.eval.linear_epochs = args.linear_epochs
    with tempfile.TemporaryDirectory() as workdir:
      t = time.perf_counter()
      results = train.run(config, workdir)
      wall = time.perf_counter() - t
      with open(os.path.join(workdir, "results.json")) as f:
        evals = json.load(f)["evals"]
    runs[name] = (results, evals, wall)
    print(f"{name}: {results} (wall {wall:.0f} s)", flush=True)

  print(f"\n{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}, {jax.device_count()} device(s); {args.epochs:g} epochs, linear probe "
        f"{args.linear_epochs} epochs on frozen features (no augmentation)\n")
  print("| encoder | kNN top-1 | linear top-1 | linear top-5 | online probe | train s (pretraining only) |")
  print("|---|---|---|---|---|---|")
  for name, scores in base.items():
    print(f"| {name} | {100 * scores['knn_accuracy']:.2f}% | {100 * scores['linear_top1']:.2f}% | "
          f"{100 * scores['linear_top5']:.2f}% | | |")
  for name, (results, _, _) in runs.items():
    print(f"| {name}, {args.epochs:g} epochs | {100 * results['knn_accuracy']:.2f}% | "
          f"{100 * results['linear_top1']:.2f}% | {100 * results['linear_top5']:.2f}% | "
          f"{100 * results.get('online_probe_accuracy', float('nan')):.2f}% | {results['train_seconds']:.0f} |")

  pixels = base["raw pixels"]["knn_accuracy"]
  print("\nkNN top-1 after each epoch (of the same schedule), and the first epoch that passes raw pixels "
        f"({100 * pixels:.2f}%):\n")
  epochs = int(np.ceil(args.epochs))
  print("| method | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " | passes raw pixels at |")
  print("|---|" + "---|" * epochs + "---|")
  for name, (_, evals, _) in runs.items():
    by_epoch = {round(e["epoch"]): e["knn_accuracy"] for e in evals}
    cells = [f"{100 * by_epoch[e]:.2f}%" if e in by_epoch else "" for e in range(1, epochs + 1)]
    passed = next((e for e in range(1, epochs + 1) if by_epoch.get(e, 0) > pixels), None)
    print(f"| {name} | " + " | ".join(cells) + f" | {'epoch ' + str(passed) if passed else 'not within budget'} |")


if __name__ == "__main__":
  main()
