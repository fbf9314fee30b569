"""jaxssl's training step against lightly's, from the same weights on the same views.

    python benchmarks/parity/step_parity_vs_lightly.py [--methods byol,simclr,vicreg] [--steps 20] [--batch 64]
    python benchmarks/parity/step_parity_vs_lightly.py --torch_padding      # the one recipe difference aligned

When a method's accuracy differs between jaxssl and lightly on the same recipe (benchmarks/
accuracy_vs_lightly.py), this separates the step from everything random around it. For each method: jaxssl's
config (the accuracy benchmark's 3-epoch schedule at ``--batch``) builds the trainer; its augmentation makes the
views of ``--steps`` batches (rounded to uint8); jaxssl's jitted step trains on them from its initial state,
with every random op of the recipe switched off so the given views go in unchanged; then
benchmarks/peers/lightly_parity.py, in the PyTorch venv, loads the same initial weights into lightly's model
(benchmarks/peers/lightly_train.py: lightly's heads, losses, LARS and schedules) and trains it on the same views.
Prints each side's loss at some steps and the largest relative difference.

The two steps then differ only where the recipes do: the padding of the stride-2 3x3 convolutions (Flax's
"SAME", as DeepMind's BYOL and big_vision, against PyTorch's 1 on each side). ``--torch_padding``
(accuracy_vs_lightly.py's experiment) pads jaxssl's as PyTorch's: the losses then agree to float32 rounding at
the first steps and drift apart slowly after (rounding differences grow through training). Before jaxssl's
LARS applied the learning rate after the momentum (2026-11-29) that order was a second difference.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.accuracy import accuracy_vs_lightly  # noqa: E402
from jaxssl import data, train
from jaxssl.engine import train_step
from jaxssl.ops import augment  # noqa: E402


def jaxssl_views(trainer, images: np.ndarray, steps: int, batch: int, seed: int) -> np.ndarray:
  """[steps, views, B, H, W, C] uint8: the recipes' views of consecutive batches, rounded to 8 bits."""
  make = jax.jit(lambda keys, x: augment.views(keys, x, trainer.recipes))
  out = []
  for step in range(steps):
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(seed * 1000 + step), jnp.arange(batch))
    out.append([np.asarray(jnp.round(v * 255.0)).astype(np.uint8)
                for v in make(keys, images[step * batch:(step + 1) * batch])])
  return np.asarray(out)


def compare(name: str, args, tmp: str) -> dict:
  config = accuracy_vs_lightly.config_for(name, 3.0)
  config.train.batch_size = args.batch
  dataset = data.load(config.data)
  num_train = len(dataset.train)
  total = train.total_steps_for(config, num_train)
  trainer = train_step.build(config, total, axis_name=None, steps_per_epoch=num_train // args.batch)
  images = dataset.train.all()[0][:args.steps * args.batch]
  views = jaxssl_views(trainer, images, args.steps, args.batch, config.seed)
  # The given views go in unchanged: every random op off, the crop taken "on the host" (the views themselves).
  unchanged = tuple(augment.ViewRecipe(size=r.size, flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0,
                                       blur_prob=0.0, solarize_prob=0.0) for r in trainer.recipes)
  trainer = trainer._replace(recipes=unchanged)
  state = train_step.init_state(trainer, jax.random.key(config.seed), images.shape[-1])
  recipe = accuracy_vs_lightly.lightly_recipe(config, dataset, {}, workers=0)
  path_in, path_out = os.path.join(tmp, f"{name}_in.npz"), os.path.join(tmp, f"{name}_out.npz")
  np.savez(path_in, recipe=json.dumps(recipe), views=views, **accuracy_vs_lightly.flat("params", state.params),
           **accuracy_vs_lightly.flat("batch_stats", state.batch_stats))

  step = jax.jit(train_step.make_per_device_step(trainer, axis_name=None))
  losses = []
  for s in range(args.steps):
    batch = {"label": jnp.zeros((args.batch,), jnp.int32), **{f"view{v}": views[s, v] for v in range(len(unchanged))}}
    state, metrics = step(state, batch)
    losses.append(float(metrics["loss"]))
  subprocess.run([args.lightly_python, common.peer("lightly_parity.py"), path_in, path_out],
                 check=True)
  with np.load(path_out) as f:
    theirs = f["losses"]
  ours = np.asarray(losses)
  return {"jaxssl": ours, "lightly": theirs, "rel": np.abs(ours - theirs) / np.abs(theirs)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="byol,simclr,vicreg")
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--lightly_python", default=common.LIGHTLY_PYTHON)
  parser.add_argument("--torch_padding", action="store_true", help="accuracy_vs_lightly.torch_style_padding")
  args = parser.parse_args()
  if args.torch_padding:
    accuracy_vs_lightly.torch_style_padding()
  shown = sorted({s for s in (0, 1, 2, 5, 10, args.steps - 1) if s < args.steps})
  with tempfile.TemporaryDirectory() as tmp:
    results = {name: compare(name, args, tmp) for name in args.methods.split(",")}
  print(f"\njaxssl {'with PyTorch padding' if args.torch_padding else 'as it is'}; batch {args.batch}, "
        f"{args.steps} steps from the same weights on the same views\n")
  print("| method | library | " + " | ".join(f"loss at step {s}" for s in shown) + " | largest relative loss "
        "difference, first 3 steps / all |")
  print("|---|---|" + "---|" * len(shown) + "---|")
  for name, r in results.items():
    for library in ("jaxssl", "lightly"):
      cells = " | ".join(f"{r[library][s]:.5f}" for s in shown)
      last = f"{r['rel'][:3].max():.1e} / {r['rel'].max():.1e}" if library == "lightly" else ""
      print(f"| {name} | {library} | {cells} | {last} |")


if __name__ == "__main__":
  main()
