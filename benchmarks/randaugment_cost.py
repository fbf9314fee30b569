"""RandAugment's cost per image: jaxssl's on the device (jitted, vmapped over a batch; jaxssl/randaugment.py)
against timm's on the host (PIL, one image at a time in one worker, as a DataLoader worker runs it), side by
side in one run, at 224 px RGB (ImageNet fine-tuning) and 28 px gray (Fashion-MNIST).

    python benchmarks/randaugment_cost.py --torch_python .venv-lightly/bin/python

The host side runs in ``--torch_python`` (a venv with timm; never a dependency of jaxssl). Prints a Markdown
table of images per second and the ratio.
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

  from jaxssl.randaugment import rand_augment

  fn = jax.jit(jax.vmap(lambda k, x: rand_augment(k, x, 2, 9.0, 0.5, fill=[0.5] * channels)))
  x = jax.random.uniform(jax.random.key(0), (batch, size, size, channels))
  keys = jax.random.split(jax.random.key(1), batch)
  jax.block_until_ready(fn(keys, x))
  start = time.perf_counter()
  for r in range(repeats):
    out = fn(jax.random.split(jax.random.key(r + 2), batch), x)
  jax.block_until_ready(out)
  return batch * repeats / (time.perf_counter() - start)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--torch_python", default=".venv-lightly/bin/python")
  args = parser.parse_args()
  import jax

  rows = []
  for size, channels, batch, repeats, count in ((224, 3, 64, 3, 300), (28, 1, 256, 10, 3000)):
    done = subprocess.run([args.torch_python, "-c", HOST, str(size), str(channels), str(count)],
                          capture_output=True, text=True)
    if done.returncode:
      print(done.stderr[-2000:], file=sys.stderr)
      return done.returncode
    host = json.loads(done.stdout)["images_per_s"]
    device = device_rate(size, channels, batch, repeats)
    rows.append((size, channels, host, device))
  print(f"\nRandAugment rand-m9-mstd0.5-inc1, images/s ({jax.devices()[0].platform}: {jax.device_count()} device(s); "
        "host: timm + PIL, one worker)\n")
  print("| image | timm on the host (1 worker) | jaxssl on the device | device / host |")
  print("|---|---|---|---|")
  for size, channels, host, device in rows:
    print(f"| {size} px x {channels} | {host:.0f} | {device:.0f} | {device / host:.2f}x |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
