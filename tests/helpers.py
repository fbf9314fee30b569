"""Shared test utilities."""

import os
import pathlib

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

AXIS = "batch"


def mesh(num_devices: int = 8) -> Mesh:
  return Mesh(np.asarray(jax.devices()[:num_devices]), (AXIS,))


def on_devices(fn, *arrays, num_devices: int = 8):
  """Runs fn(*local_shards, axis_name) under shard_map with every array split over its first axis."""
  m = mesh(num_devices)
  mapped = jax.shard_map(lambda *xs: fn(*xs, AXIS), mesh=m, in_specs=tuple(P(AXIS) for _ in arrays),
                         out_specs=P(), check_vma=False)
  placed = [jax.device_put(a, NamedSharding(m, P(AXIS))) for a in arrays]
  return jax.jit(mapped)(*placed)


def stand_in_commands(bin_dir: pathlib.Path, scripts: dict[str, str]) -> str:
  """Writes each ``{name: script}`` as an executable in ``bin_dir`` (a new folder) and returns a PATH that
  finds them first: stand-ins for cluster tools (srun, gcloud) and for python3."""
  bin_dir.mkdir()
  for name, script in scripts.items():
    (bin_dir / name).write_text(script)
    (bin_dir / name).chmod(0o755)
  return f"{bin_dir}:{os.environ['PATH']}"


def jpeg_splits(root: pathlib.Path, splits: dict[str, int], classes: int = 4) -> pathlib.Path:
  """Generated JPEG folders ``root/SPLIT/CLASS/*.jpg`` with ImageNet-like shapes, shorter side 40-64 px
  (``{"train": 24, "test": 8}``: that many images per split, spread over ``classes`` classes)."""
  from jaxssl.data import generate

  for seed, (split, count) in enumerate(splits.items()):
    generate.write_folder(str(root / split), count, classes=classes, seed=seed, shorter=(40, 64))
  return root
