"""RandAugment's cost per image, side by side in one run, at 224 px RGB (ImageNet fine-tuning) and 28 px gray
(Fashion-MNIST): jaxssl's on the device (jitted, vmapped over a batch; jaxssl/ops/randaugment.py), jaxssl's on the
host (PIL, jaxssl/data/host_randaugment.py, one image at a time in one thread and in ``--threads`` threads, as
the crop workers run it) and timm's (PIL, one image at a time in one worker, as a DataLoader worker runs it).

    python benchmarks/speed/randaugment_cost.py --torch_python .venv-lightly/bin/python

timm runs in ``--torch_python`` (a venv with timm; never a dependency of jaxssl); ``--torch_python ''`` leaves
its column out. Prints a Markdown table of images per second and the ratios.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

HOST = r"""
import json, sys, time
import numpy as np
from PIL import Image
import timm.data.auto_augment as timm_aa
from timm.data.auto_augment import rand_augment_transform
_posterize = timm_aa.posterize
# Pillow >= 10 refuses 0 bits, which timm's PosterizeIncreasing asks for at magnitude 10 (9 + 0.5 x N(0, 1) can
# reach it): keep 1 bit there instead, for the timing.
for _name in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
    timm_aa.NAME_TO_OP[_name] = lambda img, bits, **kw: _posterize(img, max(bits, 1), **kw)
size, channels, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
shape = (size, size, 3) if channels == 3 else (size, size)
images = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(64)]
fill = tuple([124, 116, 104][:channels]) if channels == 3 else 73
transform = rand_augment_transform("rand-m9-mstd0.5-inc1", {"translate_const": int(size * 0.45), "img_mean": fill})
for im in images[:8]:
    transform(im)
start = time.perf_counter()
for i in range(count):
    transform(images[i % 64])
print(json.dumps({"images_per_s": count / (time.perf_counter() - start)}))
"""


def device_rate(size: int, channels: int, batch: int, repeats: int) -> float:
  import jax

  from jaxssl.ops.randaugment import rand_augment

  fn = jax.jit(jax.vmap(lambda k, x: rand_augment(k, x, 2, 9.0, 0.5, fill=[0.5] * channels)))
  x = jax.random.uniform(jax.random.key(0), (batch, size, size, channels))
  keys = jax.random.split(jax.random.key(1), batch)
  jax.block_until_ready(fn(keys, x))
  start = time.perf_counter()
  for r in range(repeats):
    out = fn(jax.random.split(jax.random.key(r + 2), batch), x)
  jax.block_until_ready(out)
  return batch * repeats / (time.perf_counter() - start)


def jaxssl_host_rate(size: int, channels: int, count: int, threads: int) -> float:
  """Images per second of jaxssl's host RandAugment (PIL) over ``count`` images in ``threads`` threads."""
  import concurrent.futures

  import numpy as np
  from PIL import Image

  from jaxssl.data.host_randaugment import RandAugmentSpec, rand_augment

  rng = np.random.default_rng(0)
  shape = (size, size, 3) if channels == 3 else (size, size)
  images = [Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)) for _ in range(64)]
  spec = RandAugmentSpec(fill=(124, 116, 104)[:channels] if channels == 3 else (73,))
  one = lambda i: rand_augment(images[i % 64], np.random.default_rng([1, i]), spec)
  for i in range(8):
    one(i)
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    start = time.perf_counter()
    list(pool.map(one, range(count)))
    return count / (time.perf_counter() - start)


def timm_rate(torch_python: str, size: int, channels: int, count: int) -> float | None:
  if not torch_python:
    return None
  done = subprocess.run([torch_python, "-c", HOST, str(size), str(channels), str(count)],
                        capture_output=True, text=True)
  if done.returncode:
    raise SystemExit(f"--torch_python={torch_python!r}: timm's side failed: {done.stderr[-500:]}")
  return json.loads(done.stdout)["images_per_s"]


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--torch_python", default=".venv-lightly/bin/python")
  parser.add_argument("--threads", type=int, default=2, help="threads of the second jaxssl host column")
  args = parser.parse_args()
  import jax

  rows = []
  for size, channels, batch, repeats, count in ((224, 3, 64, 3, 300), (28, 1, 256, 10, 3000)):
    timm = timm_rate(args.torch_python, size, channels, count)
    host_one = jaxssl_host_rate(size, channels, count, 1)
    host_many = jaxssl_host_rate(size, channels, count, args.threads)
    device = device_rate(size, channels, batch, repeats)
    rows.append((size, channels, timm, host_one, host_many, device))
  print(f"\nRandAugment rand-m9-mstd0.5-inc1, images/s ({jax.devices()[0].platform}: {jax.device_count()} device(s))\n")
  print(f"| image | timm (PIL, 1 worker) | jaxssl host (PIL, 1 thread) | jaxssl host ({args.threads} threads) | "
        "jaxssl device | jaxssl host 1 thread / timm | device / jaxssl host 1 thread |")
  print("|---|---|---|---|---|---|---|")
  for size, channels, timm, host_one, host_many, device in rows:
    timm_cell, ratio = ("not run", "-") if timm is None else (f"{timm:.0f}", f"{host_one / timm:.2f}x")
    print(f"| {size} px x {channels} | {timm_cell} | {host_one:.0f} | {host_many:.0f} | {device:.0f} | {ratio} | "
          f"{device / host_one:.2f}x |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
