"""Images that cannot be read never end a run: each is replaced by a deterministic substitute, and listed.

ImageNet-scale folders hold truncated JPEGs, zero-byte or non-image files, broken symlinks, symlink loops and
images over PIL's decompression-bomb limit. When the example at index ``i`` of a split cannot be read, the
example at ``i + 1`` (then ``i + 2``, ... modulo the split's size) takes its place, with its label, in the same
batch slot: a function of the index alone, so the batch does not depend on the number of devices, processes or
workers, and a resumed run reads what an uninterrupted one reads. Each bad file gives one warning line and one
line in ``WORKDIR/bad_images.jsonl``; past ``config.data.max_bad_images`` distinct files (counted over the whole
run, earlier segments included) the run stops with one line: that many means the data, not a file, is broken.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Callable

import numpy as np

from jaxssl.data.errors import BadImage, DataError


class BadImages:
  """The run's register of unreadable images: ``skip(error)`` warns once per file, records it and raises
  DataError past ``limit`` (``read_substituting`` picks the example that stands in)."""

  def __init__(self, limit: int, record=None, field: str = "config.data.max_bad_images"):
    self.limit, self.record, self.field = limit, record, field
    self.seen: dict[str, str] = {}
    self._lock = threading.Lock()                # the prefetch thread and the evaluation may both read
    if record is not None and record.exists():
      for line in record.read_text().splitlines():
        try:
          self.seen[json.loads(line)["file"]] = "an earlier segment"
        except (ValueError, KeyError, TypeError):
          continue

  def skip(self, error: BadImage, announce: bool = True) -> None:
    with self._lock:
      if error.where in self.seen:
        return
      self.seen[error.where] = error.reason
      if announce:
        print(f"warning: cannot read image {error.where!r} ({error.reason}); an image next to it in the split "
              "stands in for it", file=sys.stderr, flush=True)
      if self.record is not None:
        line = json.dumps({"file": error.where, "reason": error.reason,
                           "time": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n"
        try:
          previous = self.record.read_text() if self.record.exists() else ""
          self.record.write_text(previous + line)  # read and rewritten: object stores cannot append
        except OSError:
          pass                                    # the warning line above still names the file
      if len(self.seen) > self.limit:
        where = f" (listed in {self.record})" if self.record is not None else ""
        raise DataError(f"{self.field}={self.limit}: {len(self.seen)} images cannot be read{where}, the last "
                        f"{error.where!r}; the data looks damaged: repair it, or raise the limit")


def attach(dataset, limit: int, record) -> BadImages:
  """A register that writes to ``record`` for every split of ``dataset`` (a ``jaxssl.data.Dataset``), holding
  what the splits' previous register saw (images met while the data was loaded, before the workdir was)."""
  bad = BadImages(limit, record)
  for split in dataset[:3]:
    if split is None:
      continue
    previous = getattr(split, "bad_images", None)
    if previous is not None and previous is not bad:
      for where, reason in list(previous.seen.items()):
        bad.skip(BadImage(where, reason), announce=False)
    split.bad_images = bad
  return bad


def substitute(index: int, size: int, tried: int) -> int:
  """The example that stands in for ``index`` after ``tried`` failed attempts: the next one in the split."""
  return (index + tried) % size


def read_substituting(read: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], indices, size: int,
                      bad: BadImages | None) -> tuple[np.ndarray, np.ndarray]:
  """``read(indices)`` with every unreadable example replaced by its substitute (``bad`` None: the BadImage
  propagates). ``read`` raises ``BadImage`` with the failing example's index."""
  indices = np.array(indices, copy=True)
  original = indices.copy()
  last = ""
  for _ in range(size):
    try:
      return read(indices)
    except BadImage as e:
      last = e.where
      slots = np.flatnonzero(indices == e.index) if e.index is not None else []
      if bad is None or not len(slots):
        raise
      bad.skip(e)
      for slot in slots:
        tried = int((indices[slot] - original[slot]) % size) + 1
        indices[slot] = substitute(int(original[slot]), size, tried)
  raise DataError(f"no image of the split can be read (the last tried: {last!r})")
