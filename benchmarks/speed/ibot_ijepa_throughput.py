"""iBOT's and I-JEPA's training steps, jaxssl against lightly (PyTorch), side by side in one run.

    python benchmarks/speed/ibot_ijepa_throughput.py [--methods ibot,ijepa] [--steps 10]

For each method, configs/<method>.py as it is (Fashion-MNIST's micro ViT, 4x4 patches, batch 256; iBOT with
2 x 28 + 4 x 12 crops), each side in a fresh subprocess, one after the other (never two at once):

* jaxssl: the whole training step (the crops on device, the masks from the per-example keys, student, teacher
  or target, predictor, loss, backward, AdamW with the config's clipping and rules, EMA), as
  ``python -m jaxssl.main`` runs it on this machine's devices, on synthetic images;
* lightly (benchmarks/peers/lightly_masked.py, the models accuracy_vs_lightly.py trains): iBOT's step with lightly's
  block masks drawn inside it, I-JEPA's with lightly's official collator called on the batch inside it, both on
  random crops already in memory: no augmentation. The recipe (sizes, heads, temperatures, rates) is the one
  accuracy_vs_lightly.py derives from the same config. lightly's iBOT heads score only the masked patch
  tokens; jaxssl's, as the official main_ibot.py, score every patch token of the global crops (static shapes)
  and the loss keeps the masked ones. A third row times lightly's step scoring every token too.

images/s = batch / median seconds of ``--steps`` steps after compilation (jaxssl) or the mean after 2 warm-up
steps (lightly). The ratio is jaxssl's whole step against lightly's step without augmentation.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT


def _config(method: str):
  config = importlib.import_module(f"configs.{method}").get_config()
  config.data.source, config.data.synthetic_size, config.data.synthetic_channels = "synthetic", 28, 1
  return config


def _jaxssl(method: str, steps: int, recipe_path: str) -> dict:
  """In the worker process: jaxssl's step time, and lightly's recipe of the same config written to
  ``recipe_path`` (the schedules over a Fashion-MNIST-sized run)."""
  import jax

  from benchmarks.accuracy.accuracy_vs_lightly import lightly_recipe
  from benchmarks.speed.throughput import median_step_seconds
  from jaxssl import data

  config = _config(method)
  seconds = median_step_seconds(config, steps, num_classes=0)
  standin = types.SimpleNamespace(train=data.synthetic(60_000))      # only its size and image shape are read
  with open(recipe_path, "w") as f:
    json.dump(lightly_recipe(config, standin, paths={}, workers=0), f)
  return {"images_per_s": config.train.batch_size / seconds, "batch": config.train.batch_size,
          "jax": jax.__version__, "device": jax.devices()[0].device_kind}


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="ibot,ijepa")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--lightly_python", default=common.LIGHTLY_PYTHON)
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
  parser.add_argument("--recipe", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(_jaxssl(args.worker, args.steps, args.recipe)))
    return 0

  from jaxssl.common import xla_flags

  flags = {"XLA_FLAGS": xla_flags.with_eigen_convolutions(os.environ.get("XLA_FLAGS", ""))}
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for method in args.methods.split(","):
      recipe = os.path.join(tmp, f"{method}.json")
      ours = common.last_json([sys.executable, os.path.abspath(__file__), "--worker", method, "--steps",
                               str(args.steps), "--recipe", recipe], flags)
      lightly = [args.lightly_python, common.peer("lightly_masked.py"), "--throughput", recipe,
                 str(args.steps)]
      rows.append((method, ours, common.last_json(lightly)))
      if method == "ibot":                       # the same lightly step scoring every patch token, as jaxssl
        with open(recipe) as f:
          every = dict(json.load(f), score_every_patch=True)
        with open(recipe, "w") as f:
          json.dump(every, f)
        rows.append(("ibot, lightly scoring every patch token", ours, common.last_json(lightly)))
  print(f"iBOT and I-JEPA training steps, {datetime.date.today()}, {platform.machine()} with {os.cpu_count()} "
        f"cores, jax {rows[0][1]['jax']} on {rows[0][1]['device']}; configs/<method>.py, {args.steps} steps")
  print("| method | batch | jaxssl img/s (whole step) | lightly img/s (no augmentation) | ratio |")
  print("|---|---|---|---|---|")
  for method, ours, theirs in rows:
    print(f"| {method} | {ours['batch']} | {ours['images_per_s']:.1f} | {theirs['images_per_s']:.1f} | "
          f"{ours['images_per_s'] / theirs['images_per_s']:.2f}x |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
