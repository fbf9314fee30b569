"""The pictures of a run (jaxssl/plot.py): for every method and task, curves.png has no empty panel and no
missing one, whatever the method logs; masked methods' views carry their masks; the t-SNE legend names the
classes."""

from types import SimpleNamespace

import jax
import numpy as np
import pytest

import helpers
from jaxssl import data, methods, plot, tasks
from jaxssl.runs import pictures
from jaxssl.engine import parallel
from tiny import tiny_config

NAMES = methods.names() + ["classifier"]


def _logged_names(config) -> list[str]:
  """The metric names the method's step returns (traced, not run), as the loop logs them."""
  steps = helpers.Steps(config, num_devices=1, num_classes=10, channels=1)
  batch = parallel.shard_batch(helpers.synthetic_batches(config, 1)[0], steps.mesh)
  shapes = jax.eval_shape(steps._step, steps.state, batch)[1]
  return [k for k in shapes if not k.startswith("finite")]


# Three in the fast subset (a ResNet method with collapse indicators, a masked ViT method, the classifier).
@pytest.mark.parametrize("name", [n if n in ("vicreg", "mae", "classifier") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in NAMES])
def test_every_panel_of_the_curves_has_something_in_it(name, tmp_path):
  config = tiny_config(name)
  logged = _logged_names(config)
  rng = np.random.default_rng(0)
  records = [{"kind": "train", "step": step, **{k: float(rng.uniform(0.1, 1.0)) for k in logged}}
             for step in (10, 20, 30)]
  scores = {"top1": 0.5} if name == "classifier" else {"knn_accuracy": 0.6}
  records += [{"kind": "eval", "step": step, **scores} for step in (0, 30)]
  drawn = plot.plot_curves(records, str(tmp_path / "curves.png"), offline={"step": 30, "linear_top1": 0.7})
  assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
  assert all(points > 0 for points in drawn.values()), drawn
  expected = ["training loss", "learning rate"] + (["collapse indicators"] if "rep_std" in logged else [])
  assert list(drawn) == expected + ["accuracy (%)"], (logged, drawn)


def test_masked_methods_draw_their_masks_on_the_views(tmp_path):
  keys = jax.random.split(jax.random.key(0), 4)
  for name, views in (("mae", 1), ("ibot", 2), ("ijepa", 1)):
    config = tiny_config(name)
    masks = [m for m in tasks.view_masks(config, keys) if m is not None]
    assert len(masks) == views
    for m in masks:
      m = np.asarray(m)
      grid = (config.augment.size // config.model.patch_size) ** 2
      assert m.shape == (4, grid) and set(np.unique(m)) <= {0.0, 0.5, 1.0} and (m == 1).any() and (m == 0).any()
    plot.plot_views(config, SimpleNamespace(train=data.synthetic(8, size=16)), str(tmp_path / f"{name}.png"),
                    pairs=4)
    assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
  assert tasks.view_masks(tiny_config("simclr"), keys) is None
  # A removed patch is tinted red, a kept one unchanged.
  views = np.full((1, 4, 4, 1), 0.5)
  tinted = pictures.masked_view(views, np.array([[1.0, 0.0, 0.5, 0.0]]))
  assert np.allclose(tinted[0, 0, 0], 0.55 * 0.5 + 0.45 * np.array([1.0, 0.1, 0.1]))
  assert np.allclose(tinted[0, 0, 2], 0.5) and np.allclose(tinted[0, 2, 0], 0.15)


def test_folder_and_tfds_sources_name_their_classes(tmp_path):
  root = helpers.jpeg_splits(tmp_path, {"train": 8}, classes=3)
  source = data.sources.FolderSource(str(root / "train"), size=16)
  assert source.class_names == tuple(sorted(p.name for p in (root / "train").iterdir()))
  assert data.sources.cached(source).class_names == source.class_names
