"""jaxssl against lightly on the same recipe: kNN, linear probe and training time, side by side.

    python -m jaxssl.data.prepare fashion_mnist --from /usr/share/datasets/fashion-mnist   # once
    python3 -m venv .venv-lightly && .venv-lightly/bin/pip install torch==2.14.1 torchvision==0.29.1 lightly
    python benchmarks/accuracy/accuracy_vs_lightly.py [--methods simclr,byol,vicreg] [--epochs 3]

For each method, jaxssl's config (configs/NAME.py) is the recipe. jaxssl trains it (``train.run``); then the
recipe read from the same config (heads, loss parameters, LARS, warm-up and cosine schedule, EMA schedule, the
view recipes, batch, steps, seed) is written to a JSON file and benchmarks/peers/lightly_train.py trains lightly on
it in the PyTorch venv, on the same images. Both encoders are scored by the same code, jaxssl's kNN (cosine,
k=200, T=0.1) and linear probe (30 epochs on frozen, standardised features), on features of the same test
images; so are raw pixels and both encoders at initialisation (their default inits differ). Methods with a
lightly recipe: simclr, byol, vicreg, barlow_twins, simsiam, nnclr, mocov3 (the default is the first three), and
mae (benchmarks/peers/lightly_mae.py: lightly's MAE example model with the official loss and AdamW), ibot, ijepa,
msn and dino with a ViT config (benchmarks/peers/lightly_masked.py: lightly's masked ViT, heads, losses, block masks and I-JEPA
collator and predictor, with the official optimizers).
Prints a Markdown table.

Experiments, for when the two disagree (each separates one part of the method from the rest):
``--lightly_on_jaxssl_views`` (lightly trains on jaxssl's augmentation), ``--lightly_from_jaxssl_init`` (lightly
starts from jaxssl's initial weights), ``--torch_padding`` and ``--torch_head_init`` (jaxssl takes PyTorch's
convention), and ``--init_seeds 0,1,2`` (no training: both libraries' encoders at initialisation for several
seeds, to see how much the draw alone moves the scores).
"""

import argparse
import dataclasses
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402

from benchmarks.accuracy import accuracy  # noqa: E402
from jaxssl import data, train
from jaxssl.engine import evaluation, train_step
from jaxssl.ops import augment, optim  # noqa: E402

LIGHTLY_RECIPES = ("simclr", "byol", "vicreg", "barlow_twins", "simsiam", "nnclr", "mocov2", "mocov3", "lejepa", "mae",
                   "ibot", "ijepa", "msn")
MASKED = ("mae", "ibot", "ijepa", "msn")      # AdamW recipes, trained by lightly_mae.py / lightly_masked.py


def _linen_with(**replacements):
  """flax.linen as a namespace with some of its names replaced, for a module's ``nn`` in an experiment."""
  import flax.linen as nn

  names = {k: getattr(nn, k) for k in dir(nn) if not k.startswith("__")}
  return type("linen_with_" + "_".join(replacements), (), {**names, **replacements})


def torch_style_head_init() -> None:
  """An experiment, not a jaxssl option: the heads' Dense kernels drawn as PyTorch's Linear default
  (U(+-1/sqrt(fan_in))) instead of Flax's LeCun normal, by swapping the Dense that jaxssl.models.heads uses
  (biases stay 0; the offline linear probe's layer, in the same module, gets it too)."""
  import functools

  import flax.linen as nn

  from jaxssl.models import heads

  dense = functools.partial(nn.Dense, kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"))
  heads.nn = _linen_with(Dense=dense)


def torch_style_padding() -> None:
  """An experiment, not a jaxssl option: the ResNets' 3x3 convolutions padded by 1 on every side, as PyTorch's
  padding=1, instead of Flax's "SAME". They differ only where the stride is 2 on an even side (28 -> 14,
  14 -> 7 here): SAME pads 0 before and 1 after, so the strided 3x3 windows are centred one pixel off the 1x1
  shortcut's samples, where PyTorch centres both on the same pixels."""
  import flax.linen as nn

  from jaxssl.models import resnet

  def Conv(features, kernel_size, strides=1, **kwargs):   # noqa: N802 (stands in for the class)
    if tuple(kernel_size) == (3, 3) and "padding" not in kwargs:
      kwargs["padding"] = ((1, 1), (1, 1))
    return nn.Conv(features, kernel_size, strides, **kwargs)

  resnet.nn = _linen_with(Conv=Conv)


def config_for(name: str, epochs: float, seed: int = 0):
  config = importlib.import_module(f"configs.{name}").get_config()
  config.seed = seed
  config.train.num_epochs = epochs
  config.eval.knn_at_init = False
  config.eval.every_epochs = 0.0
  config.eval.online_probe = False               # not part of lightly's loop; it does not touch the encoder
  config.eval.linear_probe = True
  return config


def trainer_for(config, dataset) -> tuple[train_step.Trainer, int, int]:
  """The config's trainer on this dataset as train.run builds it (no online probe): (trainer, total steps, steps
  per epoch)."""
  steps_per_epoch = len(dataset.train) // config.train.batch_size
  total_steps = train.total_steps_for(config, len(dataset.train))
  return train_step.build(config, total_steps, steps_per_epoch=steps_per_epoch), total_steps, steps_per_epoch


def per_step(schedule, total_steps: int) -> list[float]:
  """A jaxssl schedule's value at every step, for lightly_train.py to use as it is (no formula of its own)."""
  return [float(v) for v in jax.jit(jax.vmap(schedule))(jnp.arange(total_steps))]


def _dino_vit(config) -> bool:
  """DINO with a ViT: lightly_masked.py's DINO step (iBOT's recipe without the patches), not lightly_train.py."""
  return config.method.name == "dino" and config.model.encoder.startswith("vit")


def lightly_recipe(config, dataset, paths: dict, workers: int) -> dict:
  """Everything lightly_train.py needs, read from the jaxssl config and the dataset; the learning rate and
  BYOL's tau of every step come from jaxssl's own schedules."""
  trainer, total_steps, steps_per_epoch = trainer_for(config, dataset)
  schedule = optim.learning_rate_schedule(config, total_steps, steps_per_epoch)
  masked = config.method.name in MASKED
  dino_vit = _dino_vit(config)
  if config.optim.name not in (("adamw",) if masked or dino_vit or config.method.name == "lejepa" else ("lars", "sgd")):
    raise ValueError(f"config.optim.name={config.optim.name!r}: not in the lightly recipe of "
                     f"{config.method.name!r}")
  extra = {}
  if config.method.name in ("ibot", "ijepa", "msn") or dino_vit:
    vit, m = trainer.model.encoder, config.method
    extra["spec"] = {"image_size": config.augment.size, "patch_size": vit.patch_size,
                     "channels": dataset.train.image_shape[-1], "dim": vit.dim, "depth": vit.depth,
                     "heads": vit.num_heads, "drop_path": config.model.drop_path_rate}
    extra["weight_decays"] = per_step(optim.weight_decay_schedule(config, total_steps), total_steps)
    if config.method.name in ("ibot", "dino"):
      from jaxssl.methods import dino, ibot
      extra["teacher_temperatures"] = per_step(lambda s: dino.teacher_temperature(s, m), total_steps)
      if config.method.name == "ibot":
        extra["patch_temperatures"] = per_step(lambda s: ibot.patch_temperature(s, m), total_steps)
      extra["clip"] = config.optim.clip_grad_norm
      last = ibot.LAST_LAYERS if config.method.name == "ibot" else dino.LAST_LAYER
      extra["frozen_steps"] = max([rule[3] for rule in config.optim.rules if rule[0] == last] or [0])
    elif config.method.name == "msn":
      extra["clip"] = config.optim.clip_grad_norm
    else:
      # The collator keeps blocks of more than min_keep patches, targets too (jaxssl's check keeps it below the
      # smallest block), and cuts each batch's contexts to their fewest.
      extra["min_keep"] = m.min_keep
  elif masked:
    vit, m = trainer.model.encoder, config.method
    extra["mae"] = {"image_size": config.augment.size, "patch_size": vit.patch_size,
                    "channels": dataset.train.image_shape[-1], "dim": vit.dim, "depth": vit.depth,
                    "heads": vit.num_heads, "decoder_dim": m.decoder_dim, "decoder_depth": m.decoder_depth,
                    "decoder_heads": m.decoder_heads, "mask_ratio": m.mask_ratio, "norm_pix": m.norm_pix_loss}
  return {**extra,
      "method": config.method.name, "method_config": config.method.to_dict(), "seed": config.seed,
      "channels": dataset.train.image_shape[-1], "mean": list(config.data.mean), "std": list(config.data.std),
      "views": [dataclasses.asdict(v) for v in trainer.recipes], "batch_size": config.train.batch_size,
      "total_steps": total_steps, "learning_rates": per_step(schedule, total_steps),
      "ema_taus": per_step(lambda s: trainer.method.ema(s, total_steps), total_steps) if trainer.method.uses_ema
                  else None,
      "optim": {k: config.optim[k] for k in ("name", "weight_decay", "momentum", "trust_coefficient", "b1", "b2")},
      "log_every": config.train.log_every * 10, "workers": workers, **paths,
  }


def score(config, dataset, train_features: np.ndarray, test_features: np.ndarray) -> dict:
  """jaxssl's kNN and linear probe with the config's evaluation settings (as train.run scores its encoder)."""
  features = {"train_features": train_features, "train_labels": dataset.eval_train.all()[1],
              "test_features": test_features, "test_labels": dataset.test.all()[1]}
  knn = evaluation.knn_accuracy_of_features(features, dataset.num_classes, config.eval)
  probe = evaluation.linear_probe_of_features(features, dataset.num_classes, config.eval, config.seed)
  return {"knn_accuracy": knn, "linear_top1": probe["top1"], "linear_top5": probe["top5"]}


def write_jaxssl_views(config, dataset, tmp: str) -> list[str]:
  """An experiment: every training step's views made by jaxssl's augmentation (the config's recipes, jaxssl's
  batches in its data pipeline's order, one key per example and view), normalised, as float16
  [steps, B, C, H, W] .npy files, one per view, for lightly to train on instead of its own transforms. It
  separates the augmentation from the rest of the method when the two libraries disagree."""
  num_train, batch = len(dataset.train), config.train.batch_size
  trainer, total, _ = trainer_for(config, dataset)
  images = dataset.train.all()[0]
  make = jax.jit(lambda keys, x: [train_step.normalize(trainer, v).transpose(0, 3, 1, 2).astype(jnp.float16)
                                  for v in augment.views(keys, x, trainer.recipes)])
  key = jax.random.key(config.seed + 1)
  paths = [os.path.join(tmp, f"{config.method.name}_view{i}.npy") for i in range(len(trainer.recipes))]
  size, channels = trainer.recipes[0].size, images.shape[-1]
  outs = [np.lib.format.open_memmap(p, mode="w+", dtype=np.float16, shape=(total, batch, channels, size, size))
          for p in paths]
  for step in range(total):
    index = data.global_batch_indices(num_train, batch, config.seed, step)  # jaxssl's own batches
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.fold_in(key, step), jnp.arange(batch))
    for out, view in zip(outs, make(keys, images[index])):
      out[step] = np.asarray(view)
  for out in outs:
    out.flush()
  return paths


def flat(prefix: str, tree) -> dict[str, np.ndarray]:
  """A Flax tree as {"prefix/path/to/leaf": array}, the names benchmarks/peers/lightly_weights.py reads."""
  return {f"{prefix}/" + "/".join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(tree).items()}


def write_jaxssl_init(config, dataset, tmp: str) -> str:
  """An experiment: jaxssl's initial parameters and BatchNorm statistics for the config (the draw train.run
  starts from, ``init_state`` at config.seed), as an .npz under their Flax paths, for lightly to start from
  (benchmarks/peers/lightly_weights.py maps them). It separates the initial draw from the rest of the method."""
  trainer, _, _ = trainer_for(config, dataset)
  state = train_step.init_state(trainer, jax.random.key(config.seed), dataset.train.image_shape[-1])
  path = os.path.join(tmp, f"{config.method.name}_init.npz")
  np.savez(path, **flat("params", state.params), **flat("batch_stats", state.batch_stats))
  return path


def run_lightly(config, dataset, python: str, workers: int, tmp: str, jaxssl_views: bool = False,
                jaxssl_init: bool = False, init_only: bool = False) -> tuple[dict | None, dict, dict]:
  """lightly trained on the config's recipe in the PyTorch venv: (scores of the trained encoder, or None with
  ``init_only``, which skips the training; scores of its initial encoder; lightly_train.py's timing line)."""
  images = os.path.join(tmp, "images.npz")
  if not os.path.exists(images):
    np.savez(images, train_images=dataset.train.all()[0], eval_train_images=dataset.eval_train.all()[0],
             test_images=dataset.test.all()[0])
  paths = {"data": images, "features": os.path.join(tmp, f"{config.method.name}_features.npz")}
  if jaxssl_views:
    paths["view_files"] = write_jaxssl_views(config, dataset, tmp)
  if jaxssl_init:
    paths["init_weights"] = write_jaxssl_init(config, dataset, tmp)
  recipe_path = os.path.join(tmp, f"{config.method.name}_recipe.json")
  recipe = lightly_recipe(config, dataset, paths, workers)
  if init_only:
    recipe["total_steps"] = 0
  with open(recipe_path, "w") as f:
    json.dump(recipe, f, indent=1)
  command = ([common.peer("lightly_mae.py"), "--train"] if config.method.name == "mae"
             else [common.peer("lightly_masked.py")]
             if config.method.name in MASKED or _dino_vit(config)
             else [common.peer("lightly_train.py")])
  done = subprocess.run([python, *command, recipe_path], stdout=subprocess.PIPE, text=True, check=True)
  timing = json.loads(done.stdout.strip().splitlines()[-1])
  with np.load(paths["features"]) as f:
    scores = None if init_only else score(config, dataset, f["train"], f["test"])
    init = score(config, dataset, f["init_train"], f["init_test"])
  return scores, init, timing


def print_init_seeds(name: str, seeds: list[int], args) -> None:
  """The encoders at initialisation, for several seeds: jaxssl's draw (Flax's initialisers from
  jax.random.key(seed)) and lightly's (torch.manual_seed(seed)), each scored by jaxssl's kNN and linear probe.
  How far apart draws of the same distribution score tells how much of a gap at a few epochs a seed can make."""
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    dataset = None
    for seed in seeds:
      config = config_for(name, args.epochs, seed)
      dataset = dataset or data.load(config.data)
      ours = accuracy.random_init_scores(config, dataset, config.eval.linear_epochs)
      _, theirs, _ = run_lightly(config, dataset, args.lightly_python, args.lightly_workers, tmp, init_only=True)
      rows.append((seed, ours, theirs))
      print(f"seed {seed}: jaxssl {ours} lightly {theirs}", flush=True)
  print(f"\n{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}; {name}'s encoder at initialisation; kNN and linear probe by jaxssl's code\n")
  print("| seed | jaxssl kNN | jaxssl linear | lightly kNN | lightly linear |")
  print("|---|---|---|---|---|")
  for seed, ours, theirs in rows:
    print(f"| {seed} | {100 * ours['knn_accuracy']:.2f}% | {100 * ours['linear_top1']:.2f}% | "
          f"{100 * theirs['knn_accuracy']:.2f}% | {100 * theirs['linear_top1']:.2f}% |")
  for library, column in (("jaxssl", 1), ("lightly", 2)):
    knn = np.array([100 * r[column]["knn_accuracy"] for r in rows])
    print(f"\n{library}: kNN mean {knn.mean():.2f}%, spread {knn.max() - knn.min():.2f} points", end="")
  print()


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="simclr,byol,vicreg")
  parser.add_argument("--epochs", type=float, default=3.0)
  parser.add_argument("--lightly_python", default=common.LIGHTLY_PYTHON)
  parser.add_argument("--lightly_workers", type=int, default=2, help="lightly's DataLoader worker processes")
  parser.add_argument("--seed", type=int, default=0, help="config.seed, and torch's seed on lightly's side")
  parser.add_argument("--skip_jaxssl", action="store_true", help="lightly only (e.g. to test the recipe)")
  parser.add_argument("--skip_lightly", action="store_true", help="jaxssl only (e.g. another seed)")
  parser.add_argument("--lightly_on_jaxssl_views", action="store_true",
                      help="experiment: lightly trains on the views of jaxssl's augmentation (write_jaxssl_views)")
  parser.add_argument("--lightly_from_jaxssl_init", action="store_true",
                      help="experiment: lightly starts from jaxssl's initial weights (write_jaxssl_init)")
  parser.add_argument("--torch_head_init", action="store_true",
                      help="experiment: jaxssl's heads initialised as PyTorch's Linear (see torch_style_head_init)")
  parser.add_argument("--torch_padding", action="store_true",
                      help="experiment: jaxssl's 3x3 convolutions padded as PyTorch's (see torch_style_padding)")
  parser.add_argument("--init_seeds", default="",
                      help="only the encoders at initialisation for these seeds (e.g. 0,1,2), no training")
  args = parser.parse_args()
  if args.init_seeds:
    print_init_seeds(args.methods.split(",")[0], [int(s) for s in args.init_seeds.split(",")], args)
    return
  if args.torch_head_init:
    torch_style_head_init()
  if args.torch_padding:
    torch_style_padding()

  rows, baselines = [], {}
  with tempfile.TemporaryDirectory() as tmp:
    for name in args.methods.split(","):
      if name not in LIGHTLY_RECIPES:
        raise SystemExit(f"--methods: {name!r} has no lightly recipe here; use some of {LIGHTLY_RECIPES}")
      config = config_for(name, args.epochs, args.seed)
      dataset = data.load(config.data)
      if not args.skip_jaxssl:
        results = train.run(config, os.path.join(tmp, name), dataset=dataset)
        rows.append((name, "jaxssl", results, results["train_seconds"], results["final_loss"]))
        print(f"{name} jaxssl: {results}", flush=True)
      if args.skip_lightly:
        continue
      if not args.skip_jaxssl and not baselines:
        base = accuracy.baselines(config_for(name, args.epochs, args.seed), config.eval.linear_epochs)
        baselines[("raw pixels", "")] = base["raw pixels"]
        baselines[("random init", "jaxssl")] = base["random-init encoder"]
      scores, init, timing = run_lightly(config, dataset, args.lightly_python, args.lightly_workers, tmp,
                                         args.lightly_on_jaxssl_views, args.lightly_from_jaxssl_init)
      baselines.setdefault(("random init", "lightly"), init)
      rows.append((name, "lightly", scores, timing["train_seconds"], timing["final_loss"]))
      print(f"{name} lightly: {scores} {timing}", flush=True)

  print(f"\n{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"jax {jax.__version__}; each method's config, {args.epochs:g} epochs, seed {args.seed}; kNN and linear "
        "probe by jaxssl's code on both encoders\n")
  print("| method | library | kNN top-1 | linear top-1 | linear top-5 | final loss | pretraining s |")
  print("|---|---|---|---|---|---|---|")
  for (what, library), s in baselines.items():
    print(f"| {what} | {library} | {100 * s['knn_accuracy']:.2f}% | {100 * s['linear_top1']:.2f}% | "
          f"{100 * s['linear_top5']:.2f}% | | |")
  for name, library, s, seconds, loss in rows:
    print(f"| {name} | {library} | {100 * s['knn_accuracy']:.2f}% | {100 * s['linear_top1']:.2f}% | "
          f"{100 * s['linear_top5']:.2f}% | {loss:.4f} | {seconds:.0f} |")


if __name__ == "__main__":
  main()
