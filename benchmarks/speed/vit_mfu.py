"""Images/s, TFLOP/s per device and MFU of the ViT ImageNet steps, with and without remat, on this machine's
devices: MAE ViT-B/16 and DINO ViT-S/16 (2 x 224 + 8 x 96 crops) at 224 px in bfloat16.

    python benchmarks/speed/vit_mfu.py           # a GPU or TPU (benchmarks/speed/gpu.sh runs it)
    python benchmarks/speed/vit_mfu.py --encoder vit_micro --batch 16 --steps 2     # a try on the CPU

The whole training step of each ImageNet config (the photometric augmentations on device, the loss, backward,
AdamW, the EMA teacher) on host crops already in memory (random uint8), compiled once ahead of time as
``python -m jaxssl.main`` compiles it; seconds per step = median of ``--steps`` steps. FLOPs are XLA's count of
the compiled step (``jaxssl.engine.speed``; with remat it includes the recomputation, so the MFU column is then the
hardware FLOPs utilisation); the peak is the device's bf16 dense peak, unknown on the CPU (no MFU shown).
lightly's MAE step on the same GPU is benchmarks/speed/mae_throughput.py's row in the same gpu.sh run. With
``--lightly_python`` (a Python with PyTorch, lightly and timm), lightly's DINO step of the same recipe (ViT,
batch, crops, head, AdamW, clipping, frozen last layer, EMA; benchmarks/peers/lightly_masked.py) is timed first, on
random crops already on the device (no augmentation), under bfloat16 autocast when ``--dtype`` is bfloat16,
and printed as a row below jaxssl's with the ratio. It runs before this process starts its JAX backend, which
would otherwise hold most of the GPU's memory.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
from benchmarks.speed.memory_scaling import CONFIGS, _config, compile_step  # noqa: E402  (sets up the devices)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxssl import train
from jaxssl.data.host_crops import view_key  # noqa: E402
from jaxssl.engine import parallel, speed, train_step  # noqa: E402


def measure(config, mesh, steps: int) -> dict:
  c = compile_step(config, mesh)
  compiled, trainer = c.step, c.trainer
  state = train.place_state(config, train_step.init_state(trainer, jax.random.key(0), 3), mesh)
  rng = np.random.default_rng(0)
  b = config.train.batch_size
  host = {view_key(i): rng.integers(0, 256, (b, r.size, r.size, 3), dtype=np.uint8)
          for i, r in enumerate(trainer.recipes)}
  host["label"] = np.zeros((b,), np.int32)
  batch = parallel.shard_batch(host, mesh)
  state, metrics = compiled(state, batch)             # one untimed step
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  step_s = statistics.median(times)
  flops = speed.flops_per_device(compiled)
  peak = speed.peak_tflops(jax.devices()[0].device_kind)
  out = {"images_per_s": b / step_s, "step_s": step_s, "compile_s": c.seconds, "finite": float(metrics["finite"])}
  if flops:
    out["tflops"] = flops / step_s / 1e12
    out["mfu"] = out["tflops"] / peak if peak else None
  return out


def write_lightly_recipe(config, path: str) -> None:
  """lightly's recipe of ``config`` (accuracy_vs_lightly.py's, which reads it from the config) to ``path``, for
  a stand-in dataset of 10 batches (the schedules' length; only the sizes are read)."""
  from benchmarks.accuracy.accuracy_vs_lightly import lightly_recipe

  class Split:
    image_shape = (config.augment.size, config.augment.size, 3)

    def __len__(self):
      return 10 * config.train.batch_size

  recipe = lightly_recipe(config, types.SimpleNamespace(train=Split()), paths={}, workers=0)
  with open(path, "w") as f:
    json.dump(dict(recipe, dtype=config.model.compute_dtype), f)      # lightly's autocast follows it


def method_config(method: str, args, remat: bool = False):
  """``method``'s ImageNet config as this script runs it: the global batch (default MAE 256, DINO 128), the
  compute dtype, remat and the encoder of the command line."""
  config = _config(CONFIGS[method], args.batch or {"mae": 256, "dino": 128}[method])
  config.model.compute_dtype, config.model.remat = args.dtype, remat
  if args.encoder:
    config.model.encoder = args.encoder
  return config


def lightly_dino(args) -> float:
  """lightly's DINO step in images/s: the recipe written by a CPU-only JAX subprocess, then timed in
  ``args.lightly_python``; neither starts a JAX backend on the GPU here."""
  with tempfile.TemporaryDirectory() as tmp:
    recipe = os.path.join(tmp, "dino.json")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    subprocess.run([sys.executable, os.path.abspath(__file__), "--write_lightly_recipe", recipe,
                    "--encoder", args.encoder, "--batch", str(args.batch), "--dtype", args.dtype],
                   env=env, check=True)
    lightly = common.peer("lightly_masked.py")
    return common.last_json([args.lightly_python, lightly, "--throughput", recipe, str(args.steps)])["images_per_s"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="mae,dino")
  parser.add_argument("--encoder", default="", help="override the configs' ViT (vit_micro for a CPU try)")
  parser.add_argument("--batch", type=int, default=0, help="global batch (default: MAE 256, DINO 128)")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
  parser.add_argument("--lightly_python", default="", help="time lightly's DINO step too, in this Python")
  parser.add_argument("--write_lightly_recipe", default="", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.write_lightly_recipe:
    write_lightly_recipe(method_config("dino", args), args.write_lightly_recipe)
    return
  lightly = None
  if args.lightly_python and "dino" in args.methods.split(","):
    try:
      lightly = lightly_dino(args)
    except (Exception, SystemExit) as e:  # noqa: BLE001 -- jaxssl's rows are still worth printing
      print(f"lightly's DINO step: {str(e).splitlines()[0][:200]}", flush=True)
  mesh = parallel.make_mesh()
  kind = jax.devices()[0].device_kind
  print(f"{jax.device_count()} x {kind}, jax {jax.__version__}, {args.dtype}, peak "
        f"{speed.peak_tflops(kind) or 'unknown'} TFLOP/s per device\n")
  print("| method | ViT | batch | remat | img/s | step s | TFLOP/s per device | MFU | compile s |")
  print("|---|---|---|---|---|---|---|---|---|")
  for method in args.methods.split(","):
    ours = None
    for remat in (False, True):
      config = method_config(method, args, remat)
      batch = config.train.batch_size
      try:
        r = measure(config, mesh, args.steps)
      except Exception as e:  # noqa: BLE001 -- out of memory on one row should not lose the others
        print(f"| {method} | {config.model.encoder} | {batch} | {remat} | failed: {str(e).splitlines()[0][:120]} "
              "| | | | |", flush=True)
        continue
      mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "unknown peak"
      print(f"| {method} | {config.model.encoder} | {batch} | {remat} | {r['images_per_s']:.1f} | "
            f"{r['step_s']:.3f} | {r.get('tflops', float('nan')):.3g} | {mfu} | {r['compile_s']:.0f} |", flush=True)
      if method == "dino" and not remat:
        ours = r["images_per_s"]
    if method == "dino" and lightly:
      ratio = f"jaxssl {ours / lightly:.2f}x" if ours else ""
      print(f"| dino, lightly (no augmentation) | {config.model.encoder} | {batch} | False | {lightly:.1f} | "
            f"{batch / lightly:.3f} | | {ratio} | |", flush=True)


if __name__ == "__main__":
  main()
