"""A class-balanced share of a split's labeled examples: the semi-supervised protocol of SimCLR (Chen et al.
2020, arXiv:2002.05709, section 6: fine-tuning on 1% and 10% of ImageNet's labels).

The subset depends only on the labels, the fraction and ``data.label_seed``, never on the number of devices or
processes, so every process of a run (and every resume) trains on the same examples, and a pretrained encoder
and its from-scratch baseline see the same ones.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxssl.data.errors import BadImage, DataError
from jaxssl.data.sources import Source


def balanced_indices(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
  """Sorted indices of ``round(fraction * n_c)`` (at least 1) examples of each class c, drawn without
  replacement with a generator seeded by (seed, c)."""
  labels = np.asarray(labels)
  chosen = []
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    take = max(1, int(round(fraction * len(members))))
    order = np.random.default_rng([seed, int(c)]).permutation(len(members))
    chosen.append(members[order[:take]])
  return np.sort(np.concatenate(chosen)) if chosen else np.zeros((0,), np.int64)


class SubsetSource(Source):
  """The examples of ``source`` at ``indices``, renumbered 0..len-1."""

  def __init__(self, source: Source, indices: np.ndarray):
    self.source, self.indices = source, np.asarray(indices)
    self.labels = np.asarray(source.labels)[self.indices]
    self.labeled, self.num_classes, self.class_names = source.labeled, source.num_classes, source.class_names
    self.bad_images, self.read_timeout_s, self.where = source.bad_images, source.read_timeout_s, source.where

  def __len__(self) -> int:
    return len(self.indices)

  def read(self, indices: Sequence[int] | np.ndarray):
    indices = np.asarray(indices, np.int64)
    try:
      return self.source.read(self.indices[indices])
    except BadImage as e:                  # renumbered into this subset, for the substitution
      own = [int(i) for i in indices if e.index is not None and self.indices[i] == e.index]
      raise BadImage(e.where, e.reason, own[0] if own else None) from None

  def handles(self, indices: Sequence[int] | np.ndarray):
    return self.source.handles(self.indices[np.asarray(indices, np.int64)])

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.source.image_shape


def label_subset(source: Source, fraction: float, seed: int, field: str = "data.label_fraction") -> Source:
  """``source`` itself for ``fraction`` 1, else its class-balanced subset (``balanced_indices``)."""
  if fraction >= 1.0:
    return source
  if not source.labeled or getattr(source, "labels", None) is None:
    raise DataError(f"config.{field}={fraction}: needs a labeled train split whose labels are known without "
                    "reading every image (an in-memory split, data.cache=True, or an image folder)")
  return SubsetSource(source, balanced_indices(source.labels, fraction, seed))
