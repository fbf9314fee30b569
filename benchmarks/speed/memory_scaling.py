"""Per-device memory of the compiled training step, replicated against FSDP against FSDP + remat, and the FLOPs
per image of the ImageNet configs, from XLA's analyses of the compiled step (nothing is allocated or run).

    python benchmarks/speed/memory_scaling.py                      # MAE and DINO, ViT-S/B/L at 224 px, 8 devices
    python benchmarks/speed/memory_scaling.py --sizes small --methods mae --batch 32
    python benchmarks/speed/memory_scaling.py --sizes large --layouts "fsdp,fsdp per block"
    python benchmarks/speed/memory_scaling.py --flops              # GFLOP per image of each ImageNet config
    python benchmarks/speed/memory_scaling.py --compile --sizes base,large   # compile seconds, scan_layers off / on

The step is lowered with abstract arguments (``jax.ShapeDtypeStruct`` with the shardings the run would use)
for the ImageNet config's views (host crops: 1 x 224 for MAE, 2 x 224 + 8 x 96 for DINO), and
``compiled.memory_analysis()`` gives, per device: the arguments (the train state plus this device's share of
the batch), the outputs (the new state, whose buffers the donated arguments give back) and the temporaries
(activations, gathered parameters, gradients). Runs on 8 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set here); XLA:CPU's temporaries are its own, an
accelerator's scheduler differs, but the state's share is the same on any backend.
"""

import argparse
import importlib
import math
import os
import sys
import time
from typing import Any, NamedTuple

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from jaxssl import train
from jaxssl.data.host_crops import view_key  # noqa: E402
from jaxssl.engine import parallel, speed, train_step  # noqa: E402

CONFIGS = {"mae": "mae_imagenet", "dino": "dino_imagenet"}
SIZES = {"small": "vit_small", "base": "vit_base", "large": "vit_large"}
# fsdp: the whole parameter tree gathered on entry to the step (parallel.fsdp_per_block=False); fsdp per block:
# each ViT block gathers its own (the default).
LAYOUTS = ("replicated", "fsdp", "fsdp per block", "fsdp per block + remat")
FLOP_CONFIGS = ("simclr_imagenet", "byol_imagenet", "vicreg_imagenet", "dino_imagenet", "mae_imagenet",
                "ibot_imagenet", "ijepa_imagenet:base")


def _config(name: str, batch: int):
  """``configs/NAME.py``'s config (``NAME:ARG`` passes ARG to get_config) with this global batch."""
  module, _, arg = name.partition(":")
  get_config = importlib.import_module(f"configs.{module}").get_config
  config = get_config(arg) if arg else get_config()
  config.train.batch_size = batch
  config.model.conv = "xla"                # XLA's own convolution: its FLOPs are in the cost analysis
  return config


class Compiled(NamedTuple):
  step: Any                # the compiled step
  seconds: float           # to lower and compile it
  trainer: Any             # train_step.Trainer
  state: Any               # the abstract state, each leaf a ShapeDtypeStruct with the run's sharding
  batch: Any               # the abstract global batch


def compile_step(config, mesh) -> Compiled:
  """The config's step compiled for its ImageNet views (host crops) on ``mesh``, from abstract arguments."""
  trainer = train_step.build(config, total_steps=1000, num_classes=0, steps_per_epoch=100.0)
  state = jax.eval_shape(lambda: train_step.init_state(trainer, jax.random.key(0), 3))
  state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state,
                       train.state_shardings(config, state, mesh))
  batch_sharding = NamedSharding(mesh, P(parallel.AXIS))
  b = config.train.batch_size
  batch = {view_key(i): jax.ShapeDtypeStruct((b, r.size, r.size, 3), jnp.uint8, sharding=batch_sharding)
           for i, r in enumerate(trainer.recipes)}
  batch["label"] = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=batch_sharding)
  step = train.make_step(config, trainer, state, mesh)
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  return Compiled(compiled, time.perf_counter() - start, trainer, state, batch)


def state_bytes_per_device(state) -> int:
  """Bytes of one device's share of an abstract state whose leaves carry their shardings."""
  return sum(math.prod(a.sharding.shard_shape(a.shape)) * a.dtype.itemsize for a in jax.tree.leaves(state))


def saved_for_backward(config, c: Compiled, mesh) -> int:
  """Bytes per device that the loss's forward pass keeps for its backward pass (``jax.vjp``'s residuals:
  activations, and the parameters the backward reads), from tracing one device's loss under shard_map as the
  step does; nothing is compiled. Unlike XLA:CPU's temporaries this does not depend on the backend's
  scheduler. Under FSDP without ``per_block`` the residuals hold the whole gathered parameters; with it, each
  block's shards, its gathered copy being gathered again in the backward pass."""
  from jaxssl.engine import fsdp

  state = c.state.replace(opt_state=None)
  trainer = c.trainer
  if config.parallel.fsdp:
    entry = fsdp.gradient_entry(c.state, mesh.size, config.parallel.fsdp_min_size, config.parallel.fsdp_per_block)
    specs, enter = entry.specs.replace(opt_state=None), entry.enter
    trainer = fsdp.gradient_trainer(trainer, config.parallel.fsdp_per_block)
  else:
    specs, enter = jax.tree.map(lambda _: P(), state), (lambda s: s)
  measured = []

  def one_device(state, batch):
    entered = enter(state)
    loss_fn = train_step.loss_function(trainer, entered, batch, jnp.zeros((), jnp.int32), parallel.AXIS)
    _, backward = jax.vjp(lambda params: loss_fn(params)[0], entered.params)
    measured.append(sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(backward)))
    return jnp.zeros(())

  mapped = jax.shard_map(one_device, mesh=mesh, in_specs=(specs, P(parallel.AXIS)), out_specs=P(), check_vma=False)
  jax.eval_shape(mapped, state, c.batch)
  return measured[0]


def _mib(n: float) -> str:
  return f"{n / 2**20:,.0f}"


def memory_table(args, mesh):
  print(f"per-device memory of the compiled step, {mesh.size} devices, global batch {args.batch}, 224 px "
        f"(jax {jax.__version__}, {jax.devices()[0].platform})\n")
  print("| method | ViT | layout | state (MiB) | batch share + outputs (MiB) | temporaries (MiB) | state vs replicated "
        "| saved for backward (MiB) | compile s |")
  print("|---|---|---|---|---|---|---|---|---|")
  for method in args.methods.split(","):
    for size in args.sizes.split(","):
      for layout in args.layouts.split(","):
        config = _config(CONFIGS[method], args.batch)
        config.model.encoder = SIZES[size]
        config.parallel.fsdp = layout != "replicated"
        config.parallel.fsdp_per_block = "per block" in layout
        config.model.remat = layout.endswith("remat")
        c = compile_step(config, mesh)
        m = c.step.memory_analysis()
        # The state is the donated argument; the batch share is small (uint8 crops).
        state_bytes = state_bytes_per_device(c.state)
        replicated_state = sum(math.prod(a.shape) * a.dtype.itemsize for a in jax.tree.leaves(c.state))
        rest = m.argument_size_in_bytes - state_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
        print(f"| {method} | {size} | {layout} | {_mib(state_bytes)} | {_mib(rest)} | {_mib(m.temp_size_in_bytes)} "
              f"| {state_bytes / replicated_state:.3f} | {_mib(saved_for_backward(config, c, mesh))} "
              f"| {c.seconds:.0f} |", flush=True)


def compile_table(args, mesh):
  print(f"seconds to lower and compile the training step, {mesh.size} {jax.devices()[0].platform} devices, global "
        f"batch {args.batch}, replicated state\n")
  print("| method | ViT | blocks | unrolled s | scan_layers s | ratio |")
  print("|---|---|---|---|---|---|")
  for method in args.methods.split(","):
    for size in args.sizes.split(","):
      seconds = []
      for scan in (False, True):
        config = _config(CONFIGS[method], args.batch)
        config.model.encoder, config.model.scan_layers = SIZES[size], scan
        c = compile_step(config, mesh)
        seconds.append(c.seconds)
      depth = c.trainer.model.encoder.depth
      print(f"| {method} | {size} | {depth} | {seconds[0]:.0f} | {seconds[1]:.0f} | {seconds[1] / seconds[0]:.2f}x |",
            flush=True)


def flops_table(args, mesh):
  print(f"FLOPs per image of one training step (forward and backward of every view, XLA's count on "
        f"{mesh.size} {jax.devices()[0].platform} devices, global batch {args.batch})\n")
  print("| config | encoder | views | GFLOP per image |")
  print("|---|---|---|---|")
  for name in FLOP_CONFIGS:
    config = _config(name, args.batch)
    c = compile_step(config, mesh)
    flops = speed.flops_per_device(c.step)
    views = " + ".join(f"{r.size}" for r in c.trainer.recipes)
    per_image = flops * mesh.size / args.batch if flops else float("nan")
    print(f"| {name} | {config.model.encoder} | {views} | {per_image / 1e9:.1f} |", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="mae,dino")
  parser.add_argument("--sizes", default="small,base,large")
  parser.add_argument("--batch", type=int, default=64, help="global batch")
  parser.add_argument("--layouts", default=",".join(LAYOUTS), help="of: " + ", ".join(LAYOUTS))
  parser.add_argument("--flops", action="store_true", help="the FLOPs table instead of the memory table")
  parser.add_argument("--compile", action="store_true", help="compile times with and without scan_layers")
  args = parser.parse_args()
  unknown = [layout for layout in args.layouts.split(",") if layout not in LAYOUTS]
  if unknown:
    parser.error(f"--layouts: unknown {unknown[0]!r} (known: {', '.join(LAYOUTS)})")
  mesh = parallel.make_mesh()
  (flops_table if args.flops else compile_table if args.compile else memory_table)(args, mesh)


if __name__ == "__main__":
  main()
