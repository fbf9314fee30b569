"""A run's pictures as arrays, without matplotlib: the views its recipe makes (a masked method's masks drawn on
them) and a masked method's reconstructions. TensorBoard receives them during the run
(``jaxssl.runs.metrics.MetricsWriter.write_image``); ``python -m jaxssl.plot`` draws the same with titles.
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from jaxssl import tasks
from jaxssl.ops import augment


def views_and_masks(config: ml_collections.ConfigDict, images: np.ndarray, seed: int = 0
                    ) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
  """The recipe's views of uint8 ``images`` [N, H, W, C] (floats in [0, 1], before normalisation) and, per
  view, the masks a masked method draws on it ([N, L]: 1 hidden and predicted, 0.5 hidden only, 0 seen; None
  for a view without masks)."""
  keys = jax.random.split(jax.random.key(seed), len(images))
  views = [np.asarray(v) for v in augment.views(keys, images, tasks.get(config).recipes(config))]
  masks = [None if m is None else np.asarray(m) for m in (tasks.view_masks(config, keys) or [])]
  return views, masks + [None] * (len(views) - len(masks))


def masked_view(views: np.ndarray, masks: np.ndarray) -> np.ndarray:
  """RGB views [N, S, S, 3] with the patches ``masks`` [N, L] marks tinted: 1 red, 0.5 dark, 0 as they are."""
  n, size = views.shape[0], views.shape[1]
  grid = int(round(np.sqrt(masks.shape[1])))
  cell = np.kron(masks.reshape(n, grid, grid), np.ones((size // grid, size // grid)))[..., None]
  rgb = np.repeat(views, 3, axis=-1) if views.shape[-1] == 1 else views
  red = 0.55 * rgb + 0.45 * np.array([1.0, 0.1, 0.1])
  return np.clip(np.where(cell >= 1, red, np.where(cell > 0, 0.3 * rgb, rgb)), 0.0, 1.0)


def grid(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
  """One RGB image [H, W, 3] in [0, 1] of a table of images ([h, w, C] each, any sizes), white between them."""
  rgb = [[np.repeat(im, 3, axis=-1) if im.shape[-1] == 1 else im for im in row] for row in rows]
  height = max(im.shape[0] for row in rgb for im in row)
  width = max(im.shape[1] for row in rgb for im in row)
  columns = max(len(row) for row in rgb)
  out = np.ones((len(rgb) * (height + pad) + pad, columns * (width + pad) + pad, 3), np.float32)
  for r, row in enumerate(rgb):
    for c, im in enumerate(row):
      top, left = pad + r * (height + pad), pad + c * (width + pad)
      out[top:top + im.shape[0], left:left + im.shape[1]] = np.clip(im, 0.0, 1.0)
  return out


def view_rows(config: ml_collections.ConfigDict, images: np.ndarray, seed: int = 0
              ) -> tuple[list[list[np.ndarray]], list[bool]]:
  """One row per image: the image, then its views with their masks drawn; and per view, whether it is masked."""
  views, masks = views_and_masks(config, images, seed)
  shown = [masked_view(v, m) if m is not None else v for v, m in zip(views, masks)]
  return [[images[i] / 255.0] + [v[i] for v in shown] for i in range(len(images))], [m is not None for m in masks]


def views_picture(config: ml_collections.ConfigDict, images: np.ndarray, seed: int = 0) -> np.ndarray:
  """Each image beside its views, masks drawn: one row per image (``grid``)."""
  return grid(view_rows(config, images, seed)[0])


def reconstructions(trainer, state, config: ml_collections.ConfigDict, images: np.ndarray, reconstruct,
                    seed: int = 0) -> list[list[np.ndarray]]:
  """Rows of (original, masked input with the removed patches grey, reconstruction with the visible patches
  pasted in) for uint8 ``images``, from ``state``, the masks drawn as in training (``reconstruct``: the method's
  ``jaxssl.methods.base.ReconstructFn``)."""
  from jaxssl.engine.train_step import normalize
  from jaxssl.methods.base import Variables

  size = trainer.recipes[0].size
  x = jax.vmap(lambda im: augment.crop_and_resize(im, 0.0, 0.0, im.shape[0], im.shape[1], size))(
      augment.to_float(jax.numpy.asarray(images)))
  keys = jax.random.split(jax.random.key(seed), len(images))
  removed, rebuilt = reconstruct(trainer.model, Variables(state.params, state.batch_stats), normalize(trainer, x),
                                 keys)
  mean, std = np.asarray(config.data.mean), np.asarray(config.data.std)
  original = np.asarray(x)
  masked = np.where(np.asarray(removed) > 0, 0.5, original)
  rebuilt = np.clip(np.asarray(rebuilt) * std + mean, 0, 1)
  return [[original[i], masked[i], rebuilt[i]] for i in range(len(images))]
