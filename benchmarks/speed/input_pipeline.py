"""The host input path at ImageNet scale: jaxssl's host crops against torchvision + lightly, side by side in one run.

    python benchmarks/speed/input_pipeline.py [--data_dir /tmp/jaxssl-imagenet-like] [--num_images 3000]
        [--images 1024] [--workers 1,2] [--lightly_python .venv-lightly/bin/python]
        [--grain_python .venv-grain/bin/python]

Generates once an ImageNet-like JPEG folder (``jaxssl.data.generate``: shorter side 300-500 px, ImageNet's
aspect ratios, textured content, quality 90) and times one pass over ``--images`` images per cell, each cell a
fresh subprocess, one after another (never two at once):

* jaxssl, ``data.crop_on=host``: ``data.Pipeline`` over the folder with a ``HostCropper`` of W threads: random
  resized crops of the full image (reduced-size JPEG decoding where the crops allow it), resized on the host,
  shipped as uint8. Two 224 px views (SimCLR, BYOL, VICReg) and DINO's multi-crop, 2 x 224 (scale 0.4-1) +
  6 x 96 (0.05-0.4). Flip, colour, grayscale, blur and solarize run on the accelerator, inside the step.
* jaxssl, ``data.crop_on=device`` (the path before host crops): one thread decodes each image and resizes it to
  a 224 centre square; the crops are then taken on the device (not timed here).
* lightly: torchvision ImageFolder + DataLoader with W worker processes + lightly's SimCLRTransform or
  DINOTransform, which also do colour jitter, blur and solarize on the CPU (benchmarks/peers/lightly_input.py).
* grain (with ``--grain_python``, an environment with ``grain`` installed): the same per-example crop function
  as jaxssl's through ``grain.MapDataset`` with W worker processes, for the choice between threads and
  processes.

images/s is wall-clock throughput of the pass; CPU s / image is the process's CPU time (all its threads, and
its worker processes once joined) per image. Per-core efficiency = 1 / (CPU s / image) images per CPU-second:
the figure that holds when the machine is loaded.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT
from benchmarks.speed import throughput  # noqa: E402  (the subprocess runner and its failure type)
from benchmarks.peers.lightly_input import cpu_seconds  # noqa: E402  (the same CPU-time count on both sides)

BATCH = 64


def _specs(recipe: str):
  from jaxssl.data import CropSpec

  if recipe == "simclr":
    return (CropSpec(224),) * 2
  return (CropSpec(224, (0.4, 1.0)),) * 2 + (CropSpec(96, (0.05, 0.4)),) * 6


def jaxssl_cell(data_dir: str, recipe: str, place: str, workers: int, images: int) -> dict:
  """One pass of jaxssl's host pipeline over ``images`` images of the folder's train split."""
  from jaxssl import data

  source = data.FolderSource(os.path.join(data_dir, "train"), size=224)
  crops = data.HostCropper(_specs(recipe), seed=0, channels=3, workers=workers) if place == "host" else None
  batches = images // BATCH
  start_cpu, start = cpu_seconds(), time.perf_counter()
  with data.Pipeline(source, BATCH, seed=0, prefetch=2, crops=crops) as pipeline:
    for _ in range(batches):
      batch = next(pipeline)
    seconds = time.perf_counter() - start
  return {"images": batches * BATCH, "seconds": seconds, "cpu_seconds": cpu_seconds() - start_cpu,
          "views": [list(v.shape) for k, v in sorted(batch.items()) if k != "label"]}


def grain_cell(data_dir: str, recipe: str, workers: int, images: int) -> dict:
  """The same crops through grain: a MapDataset of paths, jaxssl's per-example crop function in W worker
  processes, batched by grain."""
  import grain
  import numpy as np
  from absl import flags

  flags.FLAGS(sys.argv[:1])          # grain's workers read absl flags, which a non-absl program must parse

  from jaxssl import data
  from jaxssl.data import host_crops

  source = data.FolderSource(os.path.join(data_dir, "train"), size=224)
  specs = _specs(recipe)
  order = np.random.default_rng(0).permutation(len(source))

  def crop(index, path):
    step, slot = divmod(index, BATCH)
    return {f"view{v}": c for v, c in enumerate(host_crops.crop_example(path, specs, 3, 0, step, slot))}

  dataset = (grain.MapDataset.source([source.paths[i] for i in order]).map_with_index(crop)
             .batch(BATCH, drop_remainder=True).to_iter_dataset()
             .mp_prefetch(grain.MultiprocessingOptions(num_workers=workers)))
  batches = images // BATCH
  start_cpu, start = cpu_seconds(), time.perf_counter()
  iterator = iter(dataset)
  for _ in range(batches):
    batch = next(iterator)
  seconds = time.perf_counter() - start
  del iterator                       # stops and joins the worker processes: their CPU time is counted
  import gc

  gc.collect()
  time.sleep(1.0)
  return {"images": batches * BATCH, "seconds": seconds, "cpu_seconds": cpu_seconds() - start_cpu,
          "views": [list(v.shape) for v in batch.values()]}


def _cell(args, who: str, recipe: str, workers: int, place: str = "host") -> dict | None:
  common = ["--data_dir", args.data_dir, "--recipe", recipe, "--workers", str(workers), "--images",
            str(args.images)]
  if who == "lightly":
    command = [args.lightly_python, common.peer("lightly_input.py"), *common, "--data_dir",
               os.path.join(args.data_dir, "train"), "--batch", str(BATCH)]
  else:
    python = args.grain_python if who == "grain" else sys.executable
    command = [python, os.path.abspath(__file__), "--worker", who, "--place", place, *common]
  try:
    return throughput._run(command, timeout=args.cell_timeout)
  except common.CellFailed as error:
    print(f"error: {error}", file=sys.stderr, flush=True)
    return None


def _format(cell: dict | None) -> tuple[str, str]:
  if cell is None:
    return "failed", ""
  return f"{cell['images'] / cell['seconds']:.0f}", f"{1000 * cell['cpu_seconds'] / cell['images']:.2f}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default="/tmp/jaxssl-imagenet-like")
  parser.add_argument("--num_images", type=int, default=3000, help="images generated (once) in data_dir/train")
  parser.add_argument("--images", type=int, default=1024, help="images per measurement")
  parser.add_argument("--workers", default="1,2", help="worker counts to time")
  parser.add_argument("--recipes", default="simclr,dino")
  parser.add_argument("--lightly_python", default=common.LIGHTLY_PYTHON)
  parser.add_argument("--grain_python", default="", help="a python with grain installed (empty: skip grain)")
  parser.add_argument("--cell_timeout", type=float, default=900)
  parser.add_argument("--worker", choices=("jaxssl", "grain"), help=argparse.SUPPRESS)
  parser.add_argument("--place", default="host", help=argparse.SUPPRESS)
  parser.add_argument("--recipe", default="simclr", help=argparse.SUPPRESS)
  args = parser.parse_args()

  if args.worker:
    workers = int(args.workers)
    if args.worker == "jaxssl":
      result = jaxssl_cell(args.data_dir, args.recipe, args.place, workers, args.images)
    else:
      result = grain_cell(args.data_dir, args.recipe, workers, args.images)
    print(json.dumps(result), flush=True)
    return
  if not shutil.which(args.lightly_python):
    raise SystemExit(f"error: --lightly_python={args.lightly_python!r} does not exist (see "
                     "benchmarks/speed/throughput.py's doc for the environment)")
  train_dir = os.path.join(args.data_dir, "train")
  if not os.path.isdir(train_dir):
    from jaxssl.data import generate

    print(f"generating {args.num_images} ImageNet-like JPEGs in {train_dir} ...", flush=True)
    generate.write_folder(train_dir, args.num_images, classes=10)
  _describe(train_dir)

  worker_counts = [int(w) for w in args.workers.split(",")]
  print(f"\n{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores; one pass over "
        f"{args.images} images per cell, batch {BATCH}\n")
  print("| recipe | path | workers | images/s | CPU ms / image | images per CPU-second |")
  print("|---|---|---|---|---|---|")
  rows = []
  for recipe in args.recipes.split(","):
    views = "2 x 224" if recipe == "simclr" else "2 x 224 + 6 x 96"
    if recipe == "simclr":
      rows.append((f"{recipe} ({views})", "jaxssl, crop_on=device (224 centre square, 1 thread)", 1,
                   _cell(args, "jaxssl", recipe, 1, place="device")))
    for workers in worker_counts:
      rows.append((f"{recipe} ({views})", "jaxssl, crop_on=host (threads)", workers,
                   _cell(args, "jaxssl", recipe, workers)))
      if args.grain_python:
        rows.append((f"{recipe} ({views})", "jaxssl's crops through grain (processes)", workers,
                     _cell(args, "grain", recipe, workers)))
      rows.append((f"{recipe} ({views})", "torchvision + lightly transform (processes)", workers,
                   _cell(args, "lightly", recipe, workers)))
    for recipe_name, path, workers, cell in rows:
      if recipe_name.startswith(recipe):
        rate, cpu = _format(cell)
        per_cpu = "" if cell is None else f"{cell['images'] / cell['cpu_seconds']:.0f}"
        print(f"| {recipe_name} | {path} | {workers} | {rate} | {cpu} | {per_cpu} |", flush=True)
  _ratios(rows, worker_counts)
  if any(cell is None for *_, cell in rows):
    sys.exit(1)


def _ratios(rows, worker_counts) -> None:
  """jaxssl's images per CPU-second over lightly's, and each path's scaling from 1 to the most workers."""
  def find(recipe, path, workers):
    for r, p, w, cell in rows:
      if r.startswith(recipe) and p.startswith(path) and w == workers and cell is not None:
        return cell
    return None

  print()
  for recipe in sorted({r.split(" ")[0] for r, *_ in rows}):
    for workers in worker_counts:
      ours, theirs = find(recipe, "jaxssl, crop_on=host", workers), find(recipe, "torchvision", workers)
      if ours and theirs:
        ratio = (ours["images"] / ours["cpu_seconds"]) / (theirs["images"] / theirs["cpu_seconds"])
        print(f"{recipe}, {workers} worker(s): jaxssl / lightly, images per CPU-second: {ratio:.2f}x")
    most = max(worker_counts)
    for path in ("jaxssl, crop_on=host", "jaxssl's crops through grain", "torchvision"):
      one, many = find(recipe, path, 1), find(recipe, path, most)
      if one and many and most > 1:
        speedup = (many["images"] / many["seconds"]) / (one["images"] / one["seconds"])
        print(f"{recipe}, {path}: {most} workers / 1 worker, images/s: {speedup:.2f}x")


def _describe(train_dir: str) -> None:
  import numpy as np
  from PIL import Image

  files = [os.path.join(d, f) for d, _, fs in os.walk(train_dir) for f in fs if f.endswith(".jpg")]
  sample = files[:: max(1, len(files) // 300)]
  sizes = np.asarray([Image.open(f).size for f in sample])
  kb = np.mean([os.path.getsize(f) for f in sample]) / 1e3
  print(f"{len(files)} JPEGs, mean {sizes[:, 0].mean():.0f} x {sizes[:, 1].mean():.0f} px, {kb:.0f} KB "
        f"(from {len(sample)} of them)")


if __name__ == "__main__":
  main()
