"""Pictures of a run: ``python -m jaxssl.plot --workdir DIR`` writes PNGs into ``DIR/plots``.

- ``curves.png``: training loss, learning rate, representation std / effective rank, and the accuracies over
  steps (from metrics.jsonl; the offline linear probe from eval.json), each panel only where the run logged
  what it shows;
- ``views.png``: pairs of augmented views from the run's own recipe, the images the model saw, with a masked
  method's masks drawn on them;
- ``embedding.png``: a 2-D t-SNE map of test-set features of the latest checkpoint, coloured by class (named
  where the dataset names them);
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


ACCURACIES = (("knn_accuracy", "kNN"), ("online_probe_accuracy", "online probe (test)"),
              ("linear_top1", "linear probe"), ("top1", "classifier (test)"))


def curve_panels(records: list[dict], offline: dict | None = None) -> list[str]:
  """The titles of the panels ``plot_curves`` draws for these records: only those with something in them."""
  train = [r for r in records if r.get("kind") == "train"]
  evals = [r for r in records if r.get("kind") == "eval"]
  panels = ["training loss"]
  if any("lr" in r for r in train):
    panels.append("learning rate")
  if any("rep_std" in r or "rep_rank" in r for r in train):
    panels.append("collapse indicators")
  if (any(key in r for r in evals for key, _ in ACCURACIES) or any("probe_acc" in r or "train_top1" in r
                                                                     for r in train) or offline):
    panels.append("accuracy (%)")
  return panels


def plot_curves(records: list[dict], path: str, offline: dict | None = None) -> dict[str, int]:
  """Loss, learning rate, collapse indicators and accuracies against the step, each panel only where the run
  logged what it shows; every evaluation a marker (kNN, online and linear probe, a classifier's top-1), and
  ``offline`` (``python -m jaxssl.evaluate``'s eval.json: its step and linear probe) one more. Returns {panel
  title: finite points drawn in it}."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  train = [r for r in records if r.get("kind") == "train"]
  evals = [r for r in records if r.get("kind") == "eval"]
  panels = curve_panels(records, offline)
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
  axis = dict(zip(panels, axes[0]))
  steps = [r["step"] for r in train]

  ax = axis["training loss"]
  ax.plot(steps, [r.get("loss", np.nan) for r in train])
  ax.set(title="training loss", xlabel="step")
  if "learning rate" in axis:
    ax = axis["learning rate"]
    ax.plot(steps, [r.get("lr", np.nan) for r in train])
    ax.set(title="learning rate", xlabel="step")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
  if "collapse indicators" in axis:
    ax = axis["collapse indicators"]
    handles = ax.plot(steps, [r.get("rep_std", np.nan) for r in train], label="representation std (1 spread, 0 "
                      "collapsed)")
    ax.set(title="collapse indicators", xlabel="step", ylabel="std")
    if any("rep_rank" in r for r in train):
      twin = ax.twinx()
      handles += twin.plot(steps, [r.get("rep_rank", np.nan) for r in train], color="tab:orange",
                           label="effective rank (right)")
      twin.set_ylabel("effective rank")
    ax.legend(handles=handles, loc="best", fontsize=8, framealpha=0.8)
  if "accuracy (%)" in axis:
    ax = axis["accuracy (%)"]
    for key, label in ACCURACIES:
      points = [(r["step"], 100 * r[key]) for r in evals if key in r]
      if points:
        ax.plot(*zip(*points), marker="o", linestyle=":" if len(points) > 1 else "none", label=label)
    if offline and "linear_top1" in offline:
      ax.plot([offline["step"]], [100 * offline["linear_top1"]], marker="*", markersize=12, linestyle="none",
              label="linear probe (jaxssl.evaluate)")
    for key, label in (("probe_acc", "online probe (train batch)"),
                       ("train_top1", "classifier (train batch, augmented)")):
      points = [(r["step"], 100 * r[key]) for r in train if key in r]
      if points:
        ax.plot(*zip(*points), alpha=0.4, label=label)
    ax.set(title="accuracy (%)", xlabel="step")
    ax.legend(fontsize=8)
  drawn = {title: sum(int(np.isfinite(np.asarray(line.get_ydata(), float)).sum())
                      for a in fig.axes if a.bbox.bounds == ax.bbox.bounds for line in a.get_lines())
           for title, ax in axis.items()}
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)
  return drawn


def plot_views(config, dataset, path: str, pairs: int = 8, seed: int = 0) -> None:
  """``pairs`` train images, each beside its views from the config's recipe (after augmentation, before
  normalisation); a masked method's masks drawn on its views as its step draws them (``tasks.view_masks``):
  red the patches hidden and predicted, dark those hidden only (I-JEPA's outside its context)."""
  from jaxssl.runs import pictures

  images, _ = dataset.train.read_substituted(np.arange(min(pairs, len(dataset.train))))
  rows, masked = pictures.view_rows(config, images, seed)
  titles = [f"view {i + 1}" + (" (masked)" if m else "") for i, m in enumerate(masked)]
  _image_grid(rows, ["image"] + titles, path)


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
  names = getattr(dataset.test, "class_names", None) or []
  for label in np.unique(labels):
    chosen = labels == label
    ax.scatter(points[chosen, 0], points[chosen, 1], s=4, color=plt.cm.tab10(int(label) % 10),
               label=names[label] if 0 <= label < len(names) else str(label))
  ax.legend(title="class", loc="best", fontsize=7, markerscale=3)
  ax.set(title=f"t-SNE of test features ({run.config.method.name}, step {int(run.state.step)})",
         xticks=[], yticks=[])
  fig.tight_layout()
  _save(fig, path)
  plt.close(fig)


def plot_reconstructions(run, dataset, reconstruct, path: str, count: int = 8, seed: int = 0) -> None:
  """``count`` test images: the original, the masked input (removed patches grey) and the reconstruction with
  the visible patches pasted in, from the latest checkpoint, masks drawn as in training (``reconstruct``: the
  method's ``jaxssl.methods.base.ReconstructFn``)."""
  from jaxssl.runs import pictures

  images, _ = dataset.test.read_substituted(np.arange(min(count, len(dataset.test))))
  rows = pictures.reconstructions(run.trainer, run.state, run.config, images, reconstruct, seed)
  _image_grid(rows, ["original", "masked", "reconstruction"], path)


def _offline_eval(workdir: str) -> dict | None:
  """``python -m jaxssl.evaluate``'s record (eval.json: its step and scores), or None where there is none."""
  path = resolve(workdir) / "eval.json"
  try:
    return json.loads(path.read_text()) if path.exists() else None
  except (OSError, ValueError):
    return None


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
    plot_curves(records, written[0], offline=_offline_eval(args.workdir))
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
