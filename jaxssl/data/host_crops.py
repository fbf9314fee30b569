"""Random resized crops of the full image on the host, decoded and resized in parallel worker threads.

For datasets of large images of varying size (ImageNet-style JPEGs) the geometric crop is taken on the host, from
the whole original image, as torchvision's ``RandomResizedCrop`` does in the SimCLR, BYOL, DINO and VICReg
recipes: area ~ U(scale) of the FULL image, log aspect ratio ~ U(log ratio), 10 attempts then a central
fallback. Each crop is resized to its view's size (PIL bilinear or bicubic, antialiased as torchvision on PIL
images) and shipped to the device as uint8; flip, colour jitter, grayscale, blur and solarize stay on the device
(``augment.views_of_crops``). A view with RandAugment (fine-tuning) is flipped and RandAugmented here too, in
timm's order (crop, flip, RandAugment), with PIL (``host_randaugment``): far cheaper on a host core than on the
device (BENCHMARKS.md).

Determinism: the box of view ``v`` of the example in slot ``j`` of global batch ``step`` is drawn from
``numpy.random.default_rng([seed, step, j, v])``, the same (seed, step, global slot) the device derives its
per-example keys from (the flip and RandAugment draw from the same generator after the box), so the crops do not
depend on the number of devices, processes or workers, and a resumed
pipeline draws what an uninterrupted one draws.

Speed: JPEGs are decoded at a reduced size (``PIL.Image.draft``, libjpeg's DCT scaling by 1/2, 1/4 or 1/8)
when every crop of the example still has at least its output resolution; PIL releases the GIL while it decodes
and resizes, so threads scale with the cores (BENCHMARKS.md, benchmarks/speed/input_pipeline.py).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import math
import os
import queue
import threading
from typing import Any, Sequence

import numpy as np

from jaxssl.data.decode import decode_errors, describe_decode_error, to_mode
from jaxssl.data.errors import BadImage, read_timeout
from jaxssl.data.host_randaugment import RandAugmentSpec, rand_augment, resample_filter

# A handle is what a source hands the cropper for one example: a file path, encoded bytes, or a decoded uint8
# array [H, W, C] (in-memory sources).
Handle = Any


@dataclasses.dataclass(frozen=True)
class CropSpec:
  """What the host does for one view: the crop's output side in pixels, area fraction range, aspect-ratio range
  and resampling filter; then, for views whose RandAugment runs on the host, a flip with probability
  ``flip_prob`` and ``randaugment`` (None: both stay on the device)."""
  size: int
  scale: tuple[float, float] = (0.08, 1.0)
  ratio: tuple[float, float] = (3 / 4, 4 / 3)
  interpolation: str = "bilinear"
  flip_prob: float = 0.0
  randaugment: RandAugmentSpec | None = None


def crop_specs(recipes: Sequence[Any]) -> tuple[CropSpec, ...]:
  """One CropSpec per ``augment.ViewRecipe``: its size, crop_scale, crop_ratio and interpolation, and its flip
  and RandAugment when ``recipe.randaugment_on_host`` (``augment.ViewRecipe.after_host_crop`` is what is left
  for the device)."""
  def spec(r) -> CropSpec:
    crop = CropSpec(r.size, tuple(r.crop_scale), tuple(r.crop_ratio), r.interpolation)
    if not r.host_flips_and_augments:
      return crop
    fill = tuple(int(round(min(255.0, 255.0 * f))) for f in r.randaugment_fill)
    ra = RandAugmentSpec(r.randaugment_layers, r.randaugment_magnitude, r.randaugment_magnitude_std,
                         fill=fill, interpolation=r.interpolation)
    return dataclasses.replace(crop, flip_prob=r.flip_prob, randaugment=ra)
  return tuple(spec(r) for r in recipes)


def sample_box(rng: np.random.Generator, width: int, height: int, scale: tuple[float, float],
               ratio: tuple[float, float], attempts: int = 10) -> tuple[int, int, int, int]:
  """torchvision's ``RandomResizedCrop.get_params``: (left, top, box width, box height) in pixels of the
  ``width`` x ``height`` image. Up to ``attempts`` boxes are drawn; the first that fits is used; if none fits,
  the central crop with the aspect ratio clamped to ``ratio``."""
  area = width * height
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(attempts):
    target_area = area * rng.uniform(scale[0], scale[1])
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target_area * aspect)))
    h = int(round(math.sqrt(target_area / aspect)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return left, top, w, h
  in_ratio = width / height
  if in_ratio < ratio[0]:
    w, h = width, int(round(width / ratio[0]))
  elif in_ratio > ratio[1]:
    h, w = height, int(round(height * ratio[1]))
  else:
    w, h = width, height
  return (width - w) // 2, (height - h) // 2, w, h


def view_rng(seed: int, step: int, slot: int, view: int) -> np.random.Generator:
  """The generator of one view's crop: a function of (seed, step, global slot in the batch, view) only."""
  return np.random.default_rng([seed % 2**64, step, slot, view])


def open_image(handle: Handle):
  """A lazily decoded PIL image from a path, encoded bytes or a uint8 array [H, W, C]."""
  from PIL import Image

  if isinstance(handle, np.ndarray):
    return Image.fromarray(handle[..., 0] if handle.shape[-1] == 1 else handle)
  if isinstance(handle, (bytes, bytearray, memoryview)):
    return Image.open(io.BytesIO(handle))
  return Image.open(handle)


def draft_size(width: int, height: int, boxes: Sequence[tuple[int, int, int, int]],
               sizes: Sequence[int]) -> tuple[int, int]:
  """The smallest decoded size that still gives every box at least its output resolution (never more than the
  image): what ``PIL.Image.draft`` is asked for."""
  needed = max(max(size / max(w, 1), size / max(h, 1)) for (_, _, w, h), size in zip(boxes, sizes))
  needed = min(needed, 1.0)
  return max(1, math.ceil(width * needed)), max(1, math.ceil(height * needed))


def crop_example(handle: Handle, specs: Sequence[CropSpec], channels: int, seed: int, step: int,
                 slot: int) -> list[np.ndarray]:
  """The views of one example: one uint8 array [size, size, channels] per spec (cropped, and flipped and
  RandAugmented where the spec says)."""
  from PIL import ImageOps

  mode = "L" if channels == 1 else "RGB"
  try:
    image = open_image(handle)
    width, height = image.size
    rngs = [view_rng(seed, step, slot, v) for v in range(len(specs))]
    boxes = [sample_box(rng, width, height, spec.scale, spec.ratio) for rng, spec in zip(rngs, specs)]
    if image.format == "JPEG":
      image.draft(mode, draft_size(width, height, boxes, [s.size for s in specs]))
    image = to_mode(image, mode)
    sx, sy = image.width / width, image.height / height
    crops = []
    for (left, top, w, h), spec, rng in zip(boxes, specs, rngs):
      box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
      view = image.resize((spec.size, spec.size), resample_filter(spec.interpolation), box=box)
      if spec.randaugment is not None:
        if rng.random() < spec.flip_prob:
          view = ImageOps.mirror(view)
        view = rand_augment(view, rng, spec.randaugment)
      out = np.asarray(view)
      crops.append(out[..., None] if out.ndim == 2 else out)
    return crops
  except decode_errors() as e:
    where = handle if isinstance(handle, str) else f"example in batch slot {slot} of step {step}"
    raise BadImage(where, describe_decode_error(e)) from None


def available_cores() -> int:
  """The cores this process may run on (its affinity mask, as a scheduler or container sets it)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:                 # not on Linux
    return os.cpu_count() or 1


class _DaemonPool:
  """Worker threads that are daemons: a read that never returns cannot keep the process from exiting, as it
  would with a ThreadPoolExecutor, whose threads are joined at exit."""

  def __init__(self, workers: int, name: str):
    self._tasks: queue.SimpleQueue = queue.SimpleQueue()
    self._threads = [threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(workers)]
    for thread in self._threads:
      thread.start()

  def _work(self) -> None:
    while (task := self._tasks.get()) is not None:
      future, fn, item = task
      if future.set_running_or_notify_cancel():
        try:
          future.set_result(fn(item))
        except BaseException as e:  # noqa: BLE001 -- handed to the caller of map
          future.set_exception(e)

  def map(self, fn, items, timeout: float | None = None) -> list:
    """[fn(item) for item in items] on the workers; TimeoutError if they are not all done within ``timeout``."""
    futures = [concurrent.futures.Future() for _ in items]
    for future, item in zip(futures, items):
      self._tasks.put((future, fn, item))
    _, pending = concurrent.futures.wait(futures, timeout)
    if pending:
      for future in futures:
        future.cancel()
      raise TimeoutError
    return [future.result() for future in futures]

  def close(self) -> None:
    for _ in self._threads:
      self._tasks.put(None)


class HostCropper:
  """Crops a batch of examples into its views with ``workers`` threads.

  ``cropper(handles, step, first_slot)`` -> ``{"view0": uint8 [n, s0, s0, C], "view1": ...}`` where handle i is
  the example in global slot ``first_slot + i`` of global batch ``step``. An unreadable image raises
  ``BadImage`` with its index in ``indices`` (the handles' examples in the split), when given.
  """

  def __init__(self, specs: Sequence[CropSpec], seed: int, channels: int, workers: int = 0,
               timeout_s: float = 0.0):
    self.specs, self.seed, self.channels = tuple(specs), seed, channels
    self.workers = workers if workers > 0 else available_cores()
    self.timeout_s = timeout_s
    self._pool = _DaemonPool(self.workers, "jaxssl-crop")

  def __call__(self, handles: Sequence[Handle], step: int, first_slot: int,
               indices: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    def one(i):
      try:
        return crop_example(handles[i], self.specs, self.channels, self.seed, step, first_slot + i)
      except BadImage as e:
        return BadImage(e.where, e.reason, None if indices is None else int(indices[i]))

    try:
      examples = self._pool.map(one, range(len(handles)), timeout=self.timeout_s or None)
    except TimeoutError:
      raise read_timeout(self.timeout_s, f"reading the images of step {step}") from None
    for example in examples:
      if isinstance(example, BadImage):
        raise example
    return {view_key(v): np.stack([e[v] for e in examples]) for v in range(len(self.specs))}

  def close(self) -> None:
    self._pool.close()


def view_key(view: int) -> str:
  """The batch key of view ``view``'s host crops."""
  return f"view{view}"
