"""The host pipeline: deterministic per-epoch shuffling, a per-process shard of each global batch, prefetching,
and a position that can be saved and restored for exact resume. With a ``HostCropper`` the batch holds each
view's crops of the full images (decoded and cropped by parallel workers) instead of whole images.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

import numpy as np

from jaxssl.data.bad_images import read_substituting
from jaxssl.data.errors import DataError, Stopped, read_timeout
from jaxssl.data.host_crops import HostCropper
from jaxssl.data.sources import Source


def global_batch_indices(num_examples: int, global_batch: int, seed: int, position: int) -> np.ndarray:
  """Indices of global batch number ``position`` (counted from the start of training), sorted.

  Epoch e is the permutation drawn from (seed, e), cut into ``num_examples // global_batch`` batches (the last
  incomplete batch is dropped). The order does not depend on the number of processes or devices.
  """
  steps_per_epoch = num_examples // global_batch
  epoch, b = divmod(position, steps_per_epoch)
  order = np.random.default_rng([seed, epoch]).permutation(num_examples)
  # Sorting makes the reads more local and keeps each example's slot independent of the layout.
  return np.sort(order[b * global_batch:(b + 1) * global_batch])


class Pipeline:
  """Endless iterator over this process's share of each global batch: ``{"image": uint8 [b, H, W, C],
  "label": int32 [b]}`` with b = global_batch / process_count, passed through ``transform`` (e.g. to global
  device arrays) in a background thread that keeps ``prefetch`` batches ready.

  ``position`` is the number of batches handed out so far; a Pipeline created with ``position=p`` yields exactly
  what an uninterrupted one yields from its p-th batch on.

  With ``crops`` the batch is ``{"view0": uint8 [b, s0, s0, C], ..., "label": int32 [b]}``: batch ``position``'s
  examples cropped by ``crops`` (whose randomness is keyed by the position and the global slot, so it does not
  depend on the processes or the cropper's workers).
  """

  def __init__(self, source: Source, global_batch: int, seed: int, position: int = 0, process_index: int = 0,
               process_count: int = 1, prefetch: int = 2, transform: Callable[[dict], Any] | None = None,
               crops: HostCropper | None = None):
    if global_batch % process_count:
      raise DataError(f"config.train.batch_size={global_batch} must be divisible by the number of processes "
                      f"({process_count})")
    if len(source) < global_batch:
      raise DataError(f"config.train.batch_size={global_batch} is larger than the train split ({len(source)} "
                      "examples)")
    self.source, self.global_batch, self.seed = source, global_batch, seed
    self.process_index, self.process_count = process_index, process_count
    self.steps_per_epoch = len(source) // global_batch
    self.transform = transform or (lambda batch: batch)
    self.crops = crops
    self._position = position
    self._queue: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    self._stop = threading.Event()
    self._thread = None
    if prefetch > 0:
      self._thread = threading.Thread(target=self._produce, args=(position,), daemon=True)
      self._thread.start()

  @property
  def position(self) -> int:
    return self._position

  def state(self) -> dict[str, int]:
    """What a checkpoint stores to resume the pipeline."""
    return {"position": self._position, "seed": self.seed, "global_batch": self.global_batch}

  def local_batch(self, position: int) -> dict[str, np.ndarray]:
    """This process's slice of global batch ``position`` (read synchronously)."""
    members = global_batch_indices(len(self.source), self.global_batch, self.seed, position)
    per_process = self.global_batch // self.process_count
    first_slot = self.process_index * per_process
    chosen = members[first_slot:first_slot + per_process]
    if self.crops is not None:
      def read(indices):
        handles, labels = self.source.handles(indices)
        return {**self.crops(handles, position, first_slot, indices), "label": labels}
    else:
      def read(indices):
        images, labels = self.source.read(indices)
        return {"image": images, "label": labels}
    return read_substituting(read, chosen, len(self.source), self.source.bad_images)

  def _produce(self, position: int) -> None:
    while not self._stop.is_set():
      try:
        item = (self.transform(self.local_batch(position)), None)
      except BaseException as e:          # handed to the consumer, raised there
        item = (None, e)
      while not self._stop.is_set():
        try:
          self._queue.put(item, timeout=0.1)
          break
        except queue.Full:
          continue
      if item[1] is not None:
        return
      position += 1

  def __iter__(self):
    return self

  def __next__(self):
    return self.next()

  def next(self, stop: Callable[[], bool] | None = None, timeout_s: float = 0.0):
    """The next batch. While waiting for it (a slow or hung read), wakes every quarter second: raises Stopped
    as soon as ``stop()`` is true, and ReadTimeout after ``timeout_s`` seconds (0: never). Without prefetch the
    batch is read here, unguarded."""
    if self._thread is None:
      batch = self.transform(self.local_batch(self._position))
    else:
      start = time.monotonic()
      while True:
        try:
          batch, error = self._queue.get(timeout=0.25)
          break
        except queue.Empty:
          if stop is not None and stop():
            raise Stopped from None
          if timeout_s and time.monotonic() - start > timeout_s:
            raise read_timeout(timeout_s, f"the input pipeline (batch {self._position})") from None
      if error is not None:
        raise error
    self._position += 1
    return batch

  def close(self) -> None:
    """Stops the prefetch thread (and the cropper's workers)."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
    if self.crops is not None:
      self.crops.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()
