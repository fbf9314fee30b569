"""lightly's host input path, timed as its examples run it: torchvision ImageFolder + DataLoader with
``--workers`` worker processes + lightly's SimCLRTransform (two 224 px views) or DINOTransform (2 x 224 + 6 x 96).

Run by benchmarks/speed/input_pipeline.py with the lightly environment's python; prints one JSON line:
{"images", "seconds", "cpu_seconds"} for one pass over ``--images`` images (worker start-up included, as at
every epoch of a DataLoader without persistent workers). CPU seconds count this process and its workers.
"""

import argparse
import json
import resource
import time


def cpu_seconds() -> float:
  """CPU time of this process and of its children that have exited (the DataLoader's workers, once joined)."""
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--data_dir", required=True)
  parser.add_argument("--recipe", choices=("simclr", "dino"), default="simclr")
  parser.add_argument("--workers", type=int, default=1)
  parser.add_argument("--images", type=int, default=1024)
  parser.add_argument("--batch", type=int, default=64)
  args = parser.parse_args()

  import torch
  import torchvision
  from lightly.transforms import DINOTransform, SimCLRTransform

  torch.set_num_threads(1)
  transform = SimCLRTransform(input_size=224) if args.recipe == "simclr" else DINOTransform()
  dataset = torchvision.datasets.ImageFolder(args.data_dir, transform=transform)
  loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True,
                                       num_workers=args.workers, generator=torch.Generator().manual_seed(0))
  batches = args.images // args.batch
  start_cpu, start = cpu_seconds(), time.perf_counter()
  iterator = iter(loader)
  for _ in range(batches):
    views, _ = next(iterator)              # (list of view batches, labels)
  seconds = time.perf_counter() - start
  del iterator                              # shuts the workers down and joins them: their CPU time is counted
  time.sleep(0.5)
  print(json.dumps({"images": batches * args.batch, "seconds": seconds, "cpu_seconds": cpu_seconds() - start_cpu,
                    "views": [list(v.shape) for v in views]}), flush=True)


if __name__ == "__main__":
  main()
