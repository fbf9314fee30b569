"""Does the host keep the accelerator fed? ``python -m jaxssl.main`` end to end on generated ImageNet-like JPEGs
(random resized crops of the full images on the host, ``configs/simclr_imagenet.py:folder``) against the same
config's training step alone on synthetic images already on the device.

    python benchmarks/speed/end_to_end.py [--images 4096] [--batch 256] [--steps 60] [--encoder resnet50]
        [--size 224] [--dtype bfloat16] [--workers 0]

Prints images/s of both and their ratio: near 1, the host path keeps up with the step; well below 1, the input
is the bottleneck. End to end = median of the logged images/s over the second half of the run (compilation and
the first batches excluded); the host pipeline, the online probe and the metrics are included, as users run
it. The step alone crops on the device, which costs about the same as the views of host crops.
"""

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT


def _write_share(args):
  directory, count, classes, seed = args
  from jaxssl.data import generate

  generate.write_folder(directory, count, classes=classes, seed=seed)


def generate_images(root: str, images: int, workers: int) -> None:
  """``images`` JPEGs under root/train (and a few under root/validation), written by ``workers`` processes."""
  shares = [(os.path.join(root, "train", f"part{i}"), images // workers, 10, i) for i in range(workers)]
  shares.append((os.path.join(root, "validation", "part0"), 64, 10, 1000))
  with multiprocessing.Pool(workers) as pool:
    pool.map(_write_share, shares)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=4096)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--encoder", default="resnet50")
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument("--workers", type=int, default=0, help="data.workers (0: one per available core)")
  parser.add_argument("--data_dir", default="", help="an existing folder with train/ (default: generate)")
  args = parser.parse_args()

  scratch = tempfile.mkdtemp(prefix="jaxssl-end-to-end-")
  try:
    data_dir = args.data_dir
    if not data_dir:
      data_dir = os.path.join(scratch, "jpegs")
      start = time.perf_counter()
      generate_images(data_dir, args.images, max(1, min(os.cpu_count() or 1, 16)))
      print(f"generated {args.images} JPEGs in {time.perf_counter() - start:.0f} s", flush=True)
    # The folder's classes are nested one level (train/partN/class_k): each part is a class here; only the
    # images matter for throughput.
    overrides = [f"--config.data.data_dir={data_dir}", f"--config.train.batch_size={args.batch}",
                 f"--config.train.num_steps={args.steps}", "--config.train.log_every=5",
                 "--config.train.checkpoint_every=0", "--config.eval.at_end=False",
                 f"--config.model.encoder={args.encoder}", f"--config.model.compute_dtype={args.dtype}",
                 f"--config.augment.size={args.size}", f"--config.data.image_size={args.size}",
                 f"--config.data.workers={args.workers}"]
    if args.encoder != "resnet50":
      overrides.append("--config.model.stem=cifar")
    workdir = os.path.join(scratch, "run")
    result = subprocess.run([sys.executable, "-m", "jaxssl.main", "--config", "configs/simclr_imagenet.py:folder",
                             f"--workdir={workdir}", *overrides], cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
      raise SystemExit(f"error: python -m jaxssl.main failed:\n{result.stderr[-3000:]}")
    records = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    rates = [r["images_per_s"] for r in records if r.get("kind") == "train" and "images_per_s" in r]
    end_to_end = statistics.median(rates[len(rates) // 2:])
    crops_line = next((line for line in result.stdout.splitlines() if line.startswith("data:")), "")

    from benchmarks.speed.throughput import median_step_seconds
    from jaxssl.schema import defaults

    config = defaults.imagenet(defaults.get_config("simclr"), "folder")
    config.model.encoder, config.model.compute_dtype = args.encoder, args.dtype
    if args.encoder != "resnet50":
      config.model.stem = "cifar"
    config.augment.size, config.train.batch_size = args.size, args.batch
    config.data.source, config.data.synthetic_size, config.data.synthetic_channels = "synthetic", args.size, 3
    step_alone = args.batch / median_step_seconds(config, steps=10)

    print(f"\n{crops_line}")
    print(f"| what | images/s |\n|---|---|\n| python -m jaxssl.main, JPEGs cropped on the host | {end_to_end:.0f} |\n"
          f"| the training step alone, images on the device | {step_alone:.0f} |\n"
          f"| end to end / step alone | {end_to_end / step_alone:.2f} |")
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
  main()
