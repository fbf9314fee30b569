"""Accuracy after a fixed pretraining budget: kNN and linear probe against a random encoder and raw pixels.

    python -m jaxssl.data.prepare fashion_mnist --from /usr/share/datasets/fashion-mnist   # once
    python benchmarks/accuracy/accuracy.py [--methods simclr,byol,vicreg] [--epochs 3] [--linear_epochs 30]

Each method's default config (small ResNet, Fashion-MNIST through TFDS) is pretrained for ``--epochs`` with a
kNN evaluation after every epoch (so one run gives the accuracy-vs-budget curve of that schedule), then the
frozen encoder gets an offline linear probe. Baselines: the same encoder at random initialisation, and raw
pixels, each with the same kNN (cosine, k=200, T=0.1) and linear probe. Prints Markdown tables.

``--linear_every_epoch`` keeps a checkpoint of every epoch and gives each its linear probe too (a pass of the
encoder and a probe's training per epoch), so the table also says at which epoch the linear probe passes raw
pixels. The long-schedule run of BENCHMARKS.md:

    python benchmarks/accuracy/accuracy.py --methods simclr,vicreg,byol --epochs 10 --linear_every_epoch
"""

import argparse
import ast
import contextlib
import importlib
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxssl import data, evals, train
from jaxssl.engine import evaluation, parallel, train_step
from jaxssl.evals import linear_probe
from jaxssl.runs import restore  # noqa: E402


def random_init_scores(config, dataset, linear_epochs: int) -> dict[str, float]:
  """kNN and linear probe of the config's encoder as initialised at config.seed (train.run's first state)."""
  mesh = parallel.make_mesh()
  trainer = train_step.build(config, total_steps=1)
  state = train_step.init_state(trainer, jax.random.key(config.seed), dataset.train.image_shape[-1])
  config.eval.linear_epochs, config.eval.linear_probe = linear_epochs, True
  return evals.evaluate_state(trainer, parallel.replicate(state, mesh), dataset, mesh)


def raw_pixel_scores(dataset, linear_epochs: int) -> dict[str, float]:
  """kNN and linear probe of the pixels themselves (scaled to [0, 1]), the floor an encoder has to pass."""
  train_x, train_y = dataset.eval_train.all()
  test_x, test_y = dataset.test.all()
  flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255.0
  pixels = {"knn_accuracy": evaluation.knn_accuracy(flat(train_x), train_y, flat(test_x), test_y,
                                                  dataset.num_classes)}
  probe = evaluation.linear_probe_accuracy(flat(train_x), train_y, flat(test_x), test_y, dataset.num_classes,
                                         epochs=linear_epochs)
  pixels["linear_top1"], pixels["linear_top5"] = probe["top1"], probe["top5"]
  return pixels


def baselines(config, linear_epochs: int) -> dict[str, dict[str, float]]:
  """kNN and linear probe of the random-init encoder and of raw pixels."""
  dataset = data.load(config.data)
  return {"random-init encoder": random_init_scores(config, dataset, linear_epochs),
          "raw pixels": raw_pixel_scores(dataset, linear_epochs)}


def linear_of_epoch_checkpoints(workdir: str, history: list[dict], dataset) -> None:
  """Adds linear_top1/top5 to each periodic evaluation (kNN only during training) from the checkpoint saved at
  its step; the final evaluation already has them."""
  done = {e["step"]: e for e in history if "linear_top1" in e}
  mesh, evaluator = parallel.make_mesh(), None
  for e in history:
    if e["step"] in done:
      e["linear_top1"], e["linear_top5"] = done[e["step"]]["linear_top1"], done[e["step"]]["linear_top5"]
      continue
    run = restore.load_run(workdir, e["step"])
    evaluator = evaluator or evals.Evaluator(run.trainer, mesh)      # compiled once for every checkpoint
    probe = linear_probe.probe(evals.Context(evaluator.compiled, parallel.replicate(run.state, mesh), dataset,
                                             final=True))
    e["linear_top1"], e["linear_top5"] = probe["top1"], probe["top5"]
    print(f"step {e['step']} (epoch {e['epoch']:.2f}): linear top-1 {100 * probe['top1']:.2f}%", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="simclr,byol,vicreg")
  parser.add_argument("--epochs", type=float, default=3.0)
  parser.add_argument("--linear_epochs", type=int, default=30)
  parser.add_argument("--baselines_only", action="store_true",
                      help="only the random-init encoder and raw pixels (e.g. of another encoder, by override)")
  parser.add_argument("--linear_every_epoch", action="store_true",
                      help="also a linear probe of each epoch's checkpoint (kept for it), not only the last")
  parser.add_argument("--workdirs", default="",
                      help="keep each method's run in WORKDIRS/NAME (default: a temporary directory)")
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
    dataset = data.load(config.data)
    if args.linear_every_epoch:
      config.train.checkpoint_every = len(dataset.train) // config.train.batch_size
      config.train.keep_checkpoints = int(np.ceil(args.epochs)) + 1
    with contextlib.ExitStack() as stack:
      if args.workdirs:
        workdir = os.path.join(args.workdirs, name)
      else:
        workdir = stack.enter_context(tempfile.TemporaryDirectory())
      t = time.perf_counter()
      results = train.run(config, workdir, dataset=dataset)
      wall = time.perf_counter() - t
      with open(os.path.join(workdir, "results.json")) as f:
        history = json.load(f)["evals"]
      if args.linear_every_epoch:
        linear_of_epoch_checkpoints(workdir, history, dataset)
    runs[name] = (results, history, wall)
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
  for name, (_, history, _) in runs.items():
    print_epoch_row(name, history, "knn_accuracy", pixels, epochs)
  if args.linear_every_epoch:
    pixels = base["raw pixels"]["linear_top1"]
    print(f"\nLinear-probe top-1 of each epoch's checkpoint, and the first epoch that passes raw pixels "
          f"({100 * pixels:.2f}%):\n")
    print("| method | " + " | ".join(f"epoch {e}" for e in range(1, epochs + 1)) + " | passes raw pixels at |")
    print("|---|" + "---|" * epochs + "---|")
    for name, (_, history, _) in runs.items():
      print_epoch_row(name, history, "linear_top1", pixels, epochs)


def print_epoch_row(name: str, history: list[dict], metric: str, pixels: float, epochs: int) -> None:
  """One Markdown row: the metric after each epoch (the last evaluation of that epoch) and the first epoch
  above raw pixels'."""
  by_epoch = {round(e["epoch"]): e[metric] for e in history if metric in e}
  cells = [f"{100 * by_epoch[e]:.2f}%" if e in by_epoch else "" for e in range(1, epochs + 1)]
  passed = next((e for e in range(1, epochs + 1) if by_epoch.get(e, 0) > pixels), None)
  print(f"| {name} | " + " | ".join(cells) + f" | {'epoch ' + str(passed) if passed else 'not within budget'} |")


if __name__ == "__main__":
  main()
