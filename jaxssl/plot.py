"""Pictures of a run: ``python -m jaxssl.plot --workdir DIR`` writes PNGs into ``DIR/plots``.

- ``curves.png``: training loss, representation std / effective rank, and the accuracies over steps
  (from metrics.jsonl);
- ``views.png``: pairs of augmented views from the run's own recipe, the images the model saw;
- ``embedding.png``: a 2-D t-SNE map of test-set features of the latest checkpoint, coloured by label;
- ``reconstruction.png`` (masked methods that predict pixels, MAE): for a few test images, the original, the
  masked input and the reconstruction (MAE's Figure 2).

Needs matplotlib and scikit-learn (``pip install -e ".[plot]"``). Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import json
import sys

import numpy as np
from etils import epath

from jaxssl.common.workdir import resolve


def read_metrics(workdir: str) -> list[dict]:
  path = resolve(workdir) / "metrics.jsonl"
  if not path.is_file():
    raise FileNotFoundError(f"--workdir={workdir!r} has no metrics.jsonl: not a jaxssl run directory")
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _save(fig, path) -> None:
  """Writes a figure as PNG to a local path or a URL (``jaxssl.common.workdir``)."""
  with epath.Path(path).open("wb") as f:
    fig.savefig(f, dpi=100, format="png")


def plot_curves(records: list[dict], path: str) -> None:
  """Loss, collapse indicators and accuracies against the step."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  train = [r for r in records if r.get("kind") == "train"]
  evals = [r for r in records if r.get("kind") == "eval"]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  steps = [r["step"] for r in train]
  axes[0].plot(steps, [r.get("loss", np.nan) for r in train])
  axes[0].set(title="training loss", xlabel="step")
  if train and "rep_std" in train[0]:
    axes[1].plot(steps, [r["rep_std"] for r in train], label="representation std (1 spread, 0 collapsed)")
    twin = axes[1].twinx()
    twin.plot(steps, [r["rep_rank"] for r in train], color="tab:orange", label="effective rank")
    twin.set_ylabel("effective rank")
    axes[1].legend(loc="lower left")
  else:
    axes[1].text(0.5, 0.5, "none logged by this method", ha="center", va="center",
                 transform=axes[1].transAxes)
  axes[1].set(title="collapse indicators", xlabel="step")
  for key, label in (("knn_accuracy", "kNN"), ("online_probe_accuracy", "online probe (test)"),
                     ("linear_top1", "linear probe"), ("top1", "classifier (test)")):
    points = [(r["step"], 100 * r[key]) for r in evals if key in r]
    if points:
      axes[2].plot(*zip(*points), marker="o", label=label)
  probe = [(r["step"], 100 * r["probe_acc"]) for r in train if "probe_acc" in r]
  if probe:
    axes[2].plot(*zip(*probe), alpha=0.4, label="online probe (train batch)")
  classifier = [(r["step"], 100 * r["train_top1"]) for r in train if "train_top1" in r]
  if classifier:
    axes[2].plot(*zip(*classifier), alpha=0.4, label="classifier (train batch, augmented)")
  axes[2].set(title="accuracy (%)", xlabel="step")
  axes[2].legend()
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)


def plot_views(config, dataset, path: str, pairs: int = 8, seed: int = 0) -> None:
  """``pairs`` train images, each beside its views from the config's recipe (after augmentation, before
  normalisation)."""
  import jax

  from jaxssl import tasks
  from jaxssl.ops import augment

  recipes = tasks.get(config).recipes(config)
  images, _ = dataset.train.read_substituted(np.arange(min(pairs, len(dataset.train))))
  keys = jax.random.split(jax.random.key(seed), len(images))
  views = [np.asarray(v) for v in augment.views(keys, images, recipes)]
  rows = [[images[row] / 255.0] + [v[row] for v in views] for row in range(len(images))]
  _image_grid(rows, ["image"] + [f"view {i + 1}" for i in range(len(views))], path)


def _image_grid(rows: list[list[np.ndarray]], titles: list[str], path: str) -> None:
  """A grid of [H, W, C] images in [0, 1], one list per row, a title over each column."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  columns = len(titles)
  fig, axes = plt.subplots(len(rows), columns, figsize=(1.6 * columns, 1.6 * len(rows)), squeeze=False)
  for row, shown in enumerate(rows):
    for col, image in enumerate(shown):
      ax = axes[row, col]
      ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None,
                vmin=0, vmax=1)
      ax.set_xticks([])
      ax.set_yticks([])
      if row == 0:
        ax.set_title(titles[col], fontsize=8)
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)


def plot_embedding(run, dataset, path: str, max_points: int = 2000, seed: int = 0) -> None:
  """t-SNE of the online encoder's test features, coloured by label."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from sklearn.manifold import TSNE

  from jaxssl import data
  from jaxssl.engine import evaluation

  rng = np.random.default_rng(seed)
  chosen = np.sort(rng.choice(len(dataset.test), min(max_points, len(dataset.test)), replace=False))
  subset = data.ArraySource(*dataset.test.read_substituted(chosen))
  apply_fn, variables, preprocess = evaluation.encoder_fn(run.trainer, run.state)
  print(f"plot: encoding {len(subset)} test images, then a t-SNE map of them (minutes on a CPU)", file=sys.stderr,
        flush=True)
  features, labels = evaluation.embed(apply_fn, variables, subset, run.config.eval.batch_size, preprocess=preprocess)
  points = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, len(features) - 1)
                ).fit_transform(features)
  fig, ax = plt.subplots(figsize=(7, 6))
  scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=4)
  ax.legend(*scatter.legend_elements(), title="label", loc="best", fontsize=7)
  ax.set(title=f"t-SNE of test features ({run.config.method.name}, step {int(run.state.step)})",
         xticks=[], yticks=[])
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)


def plot_reconstructions(run, dataset, reconstruct, path: str, count: int = 8, seed: int = 0) -> None:
  """``count`` test images: the original, the masked input (removed patches grey) and the reconstruction with
  the visible patches pasted in, from the latest checkpoint, masks drawn as in training (``reconstruct``: the
  method's ``jaxssl.methods.base.ReconstructFn``)."""
  import jax

  from jaxssl.engine.train_step import normalize
  from jaxssl.methods.base import Variables
  from jaxssl.ops import augment

  trainer = run.trainer
  images, _ = dataset.test.read_substituted(np.arange(min(count, len(dataset.test))))
  size = trainer.recipes[0].size
  x = jax.vmap(lambda im: augment.crop_and_resize(im, 0.0, 0.0, im.shape[0], im.shape[1], size))(
      augment.to_float(jax.numpy.asarray(images)))
  keys = jax.random.split(jax.random.key(seed), len(images))
  removed, rebuilt = reconstruct(trainer.model, Variables(run.state.params, run.state.batch_stats),
                                 normalize(trainer, x), keys)
  mean, std = np.asarray(run.config.data.mean), np.asarray(run.config.data.std)
  original = np.asarray(x)
  masked = np.where(np.asarray(removed) > 0, 0.5, original)
  rebuilt = np.clip(np.asarray(rebuilt) * std + mean, 0, 1)
  _image_grid([[original[i], masked[i], rebuilt[i]] for i in range(len(images))],
              ["original", "masked", "reconstruction"], path)


def main(argv: list[str] | None = None) -> int:
  from jaxssl.common import command_line

  parser = command_line.ArgumentParser(prog="python -m jaxssl.plot", description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--points", type=command_line.positive_int, default=2000,
                      help="test examples in the t-SNE map")
  parser.add_argument("--step", type=command_line.non_negative_int, default=None,
                      help="checkpoint step (default: the newest that can be read)")
  args = parser.parse_for_jax(argv)

  from jaxssl import data, tasks
  from jaxssl.runs.checkpoint import CheckpointError
  from jaxssl.runs.restore import load_config, load_run

  out = resolve(args.workdir) / "plots"
  try:
    import matplotlib  # noqa: F401
    import sklearn  # noqa: F401
    records = read_metrics(args.workdir)
    config = load_config(args.workdir, "--workdir")
    dataset = data.load(config.data)
    run = load_run(args.workdir, args.step, field="--workdir")
  except ModuleNotFoundError as e:
    print(f"error: plotting needs {e.name}; install it with `pip install -e \".[plot]\"`", file=sys.stderr)
    return 2
  except (FileNotFoundError, CheckpointError, data.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  written = [str(out / name) for name in ("curves.png", "views.png", "embedding.png")]
  try:
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(records, written[0])
    plot_views(config, dataset, written[1])
    if dataset.test is not None:
      plot_embedding(run, dataset, written[2], max_points=args.points)
      reconstruct = tasks.reconstruction(run.config)
      if reconstruct is not None:
        written.append(str(out / "reconstruction.png"))
        plot_reconstructions(run, dataset, reconstruct, written[-1])
    else:
      written.pop()
  except OSError as e:
    where = e.filename or out
    print(f"error: {where} could not be written ({type(e).__name__}: {e.strerror or e})", file=sys.stderr)
    return 2
  print("wrote " + ", ".join(written))
  return 0


if __name__ == "__main__":
  sys.exit(main())
