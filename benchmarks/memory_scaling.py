"""Per-device memory of the compiled training step, replicated against FSDP against FSDP + remat, and the FLOPs
per image of the ImageNet configs, from XLA's analyses of the compiled step (nothing is allocated or run).

    python benchmarks/memory_scaling.py                      # MAE and DINO, ViT-S/B/L at 224 px, 8 devices
    python benchmarks/memory_scaling.py --sizes small --methods mae --batch 32
    python benchmarks/memory_scaling.py --flops              # GFLOP per image of each ImageNet config
    python benchmarks/memory_scaling.py --compile --sizes base,large   # compile seconds, scan_layers off / on

The step is lowered with abstract arguments (``jax.ShapeDtypeStruct`` with the shardings the run would use)
for the ImageNet config's views (host crops: 1 x 224 for MAE, 2 x 224 + 8 x 96 for DINO), and
``compiled.memory_analysis()`` gives, per device: the arguments (the train state plus this device's share of
the batch), the outputs (the new state, whose buffers the donated arguments give back) and the temporaries
(activations, gathered parameters, gradients). Runs on 8 simulated CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``, set here); XLA:CPU's temporaries are its own, an
accelerator's scheduler differs, but the state's share is the same on any backend.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from jaxssl import fsdp, parallel, speed, train, train_step  # noqa: E402
from jaxssl.data.host_crops import view_key  # noqa: E402

CONFIGS = {"mae": "configs/mae_imagenet.py", "dino": "configs/dino_imagenet.py"}
SIZES = {"small": "vit_small", "base": "vit_base", "large": "vit_large"}
FLOP_CONFIGS = ("simclr_imagenet", "byol_imagenet", "vicreg_imagenet", "dino_imagenet", "mae_imagenet",
                "ibot_imagenet", "ijepa_imagenet:base")


def _config(path: str, batch: int):
  import importlib.util

  file, _, arg = path.partition(":")
  spec = importlib.util.spec_from_file_location("config_module", file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  config.train.batch_size = batch
  config.model.conv = "xla"                # XLA's own convolution: its FLOPs are in the cost analysis
  return config


def _abstract(tree, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings)


def compile_step(config, mesh):
  """(compiled step, seconds to lower and compile) for the config's ImageNet views on ``mesh``."""
  trainer = train_step.build(config, total_steps=1000, num_classes=0, steps_per_epoch=100.0)
  state = jax.eval_shape(lambda: train_step.init_state(trainer, jax.random.key(0), 3))
  if config.parallel.fsdp:
    shardings = fsdp.state_shardings(state, mesh, config.parallel.fsdp_min_size)
  else:
    shardings = jax.tree.map(lambda _: NamedSharding(mesh, P()), state)
  batch_sharding = NamedSharding(mesh, P(parallel.AXIS))
  b = config.train.batch_size
  batch = {view_key(i): jax.ShapeDtypeStruct((b, r.size, r.size, 3), jnp.uint8, sharding=batch_sharding)
           for i, r in enumerate(trainer.recipes)}
  batch["label"] = jax.ShapeDtypeStruct((b,), jnp.int32, sharding=batch_sharding)
  step = train.make_step(config, trainer, state, mesh)
  start = time.perf_counter()
  compiled = step.lower(_abstract(state, shardings), batch).compile()
  return compiled, time.perf_counter() - start


def _mib(n: float) -> str:
  return f"{n / 2**20:,.0f}"


def memory_table(args, mesh):
  print(f"per-device memory of the compiled step, {mesh.size} devices, global batch {args.batch}, 224 px "
        f"(jax {jax.__version__}, {jax.devices()[0].platform})\n")
  print("| method | ViT | layout | state (MiB) | batch share + outputs (MiB) | temporaries (MiB) | state vs replicated "
        "| compile s |")
  print("|---|---|---|---|---|---|---|---|")
  for method in args.methods.split(","):
    for size in args.sizes.split(","):
      replicated_state = None
      for layout in ("replicated", "fsdp", "fsdp + remat"):
        config = _config(CONFIGS[method], args.batch)
        config.model.encoder = SIZES[size]
        config.parallel.fsdp = layout != "replicated"
        config.model.remat = layout.endswith("remat")
        compiled, seconds = compile_step(config, mesh)
        m = compiled.memory_analysis()
        # The state is the donated argument; the batch share is small (uint8 crops).
        trainer = train_step.build(config, total_steps=1000)
        abstract = jax.eval_shape(lambda: train_step.init_state(trainer, jax.random.key(0), 3))
        if config.parallel.fsdp:
          specs = fsdp.state_specs(abstract, mesh.size, config.parallel.fsdp_min_size)
          state_bytes = sum(a.size * a.dtype.itemsize // (mesh.size if s != P() else 1)
                            for a, s in zip(jax.tree.leaves(abstract),
                                            jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))))
        else:
          state_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(abstract))
        replicated_state = replicated_state or state_bytes
        rest = m.argument_size_in_bytes - state_bytes + m.output_size_in_bytes - m.alias_size_in_bytes
        print(f"| {method} | {size} | {layout} | {_mib(state_bytes)} | {_mib(rest)} | {_mib(m.temp_size_in_bytes)} "
              f"| {state_bytes / replicated_state:.3f} | {seconds:.0f} |", flush=True)


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
        seconds.append(compile_step(config, mesh)[1])
      depth = train_step.build(config, total_steps=1000).model.encoder.depth
      print(f"| {method} | {size} | {depth} | {seconds[0]:.0f} | {seconds[1]:.0f} | {seconds[1] / seconds[0]:.2f}x |",
            flush=True)


def flops_table(args, mesh):
  print(f"FLOPs per image of one training step (forward and backward of every view, XLA's count on "
        f"{mesh.size} {jax.devices()[0].platform} devices, global batch {args.batch})\n")
  print("| config | encoder | views | GFLOP per image |")
  print("|---|---|---|---|")
  for name in FLOP_CONFIGS:
    config = _config(f"configs/{name.replace(':', '.py:') if ':' in name else name + '.py'}", args.batch)
    compiled, _ = compile_step(config, mesh)
    flops = speed.flops_per_device(compiled)
    trainer = train_step.build(config, total_steps=1000)
    views = " + ".join(f"{r.size}" for r in trainer.recipes)
    per_image = flops * mesh.size / args.batch if flops else float("nan")
    print(f"| {name} | {config.model.encoder} | {views} | {per_image / 1e9:.1f} |", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--methods", default="mae,dino")
  parser.add_argument("--sizes", default="small,base,large")
  parser.add_argument("--batch", type=int, default=64, help="global batch")
  parser.add_argument("--flops", action="store_true", help="the FLOPs table instead of the memory table")
  parser.add_argument("--compile", action="store_true", help="compile times with and without scan_layers")
  args = parser.parse_args()
  mesh = parallel.make_mesh()
  (flops_table if args.flops else compile_table if args.compile else memory_table)(args, mesh)


if __name__ == "__main__":
  main()
