"""Training-step throughput of jaxssl against lightly (PyTorch), side by side in one run.

    python benchmarks/speed/throughput.py [--lightly_python .venv-lightly/bin/python] [--models small_resnet,resnet18]
        [--methods simclr,byol,vicreg] [--steps 5]

lightly lives in its own environment, never a dependency of jaxssl:
``python -m venv .venv-lightly && .venv-lightly/bin/pip install torch==2.14.1 torchvision==0.29.1 lightly``.

For each model (small ResNet at 28x28x1 batch 256; ResNet-18 with the CIFAR stem at 32x32x3 batch 128) and
method, every measurement is a fresh subprocess run one after another (never two at once):

* jaxssl, the whole training step of the method's config (on-device augmentation of two views, forward,
  backward, LARS, EMA, online probe, collapse metrics), once with XLA's defaults and ``model.conv=xla`` (the
  plain ``lax`` convolution), once as ``python -m jaxssl.main`` runs it (``model.conv=auto`` and
  jaxssl.common.xla_flags);
* lightly (benchmarks/peers/lightly_step.py): forward, backward and LARS on two views already made; its
  augmentation is timed apart, in one process, as a DataLoader worker does it.

images/s = batch / median seconds of ``--steps`` steps after compilation and warm-up. The ratio column is
jaxssl's whole step against lightly's step without augmentation. A second table times augmentation alone:
jaxssl's jitted views against lightly's transforms on PIL images.
"""

import argparse
import importlib
import json
import os
import platform
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT
MODELS = {  # name: (image size, channels, batch)
    "small_resnet": (28, 1, 256),
    "resnet18": (32, 3, 128),
    "resnet50": (224, 3, 128),       # the ImageNet recipes' network (ImageNet stem), for GPU runs
}


def _config(method: str, model: str, conv: str, batch: int, dtype: str):
  config = importlib.import_module(f"configs.{method}").get_config()
  size, channels, _ = MODELS[model]
  config.model.encoder = model
  config.model.stem = "imagenet" if model == "resnet50" else "cifar"
  config.model.compute_dtype = dtype
  config.model.conv = conv
  config.augment.size = size
  config.train.batch_size = batch
  config.data.source = "synthetic"
  config.data.synthetic_size = size
  config.data.synthetic_channels = channels
  config.data.mean, config.data.std = (0.5,) * channels, (0.25,) * channels
  return config


def median_step_seconds(config, steps: int, num_classes: int = 10) -> float:
  """Median seconds of ``steps`` whole jitted training steps of ``config`` on synthetic images, after
  compilation and one warm step (also used by benchmarks/speed/step_time.py)."""
  import jax
  import numpy as np

  from jaxssl import data
  from jaxssl.engine import parallel, train_step

  batch, channels = config.train.batch_size, config.data.synthetic_channels
  source = data.synthetic((steps + 3) * batch, size=config.augment.size, channels=channels)
  mesh = parallel.make_mesh()
  trainer = train_step.build(config, total_steps=1000, num_classes=num_classes)
  state = parallel.replicate(train_step.init_state(trainer, jax.random.key(0), channels), mesh)
  step = parallel.shard_step(train_step.make_per_device_step(trainer), mesh)
  batches = data.Pipeline(source, batch, seed=0, prefetch=0)
  for _ in range(2):                                   # compile, then one warm step
    state, metrics = step(state, parallel.shard_batch(next(batches), mesh))
    jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    inputs = parallel.shard_batch(next(batches), mesh)
    start = time.perf_counter()
    state, metrics = step(state, inputs)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def jaxssl_step(method: str, model: str, conv: str, steps: int, batch: int, dtype: str) -> dict:
  """Runs in the worker process: the whole training step of the method's config."""
  import jax

  seconds = median_step_seconds(_config(method, model, conv, batch, dtype), steps)
  return {"step_s": seconds, "images_per_s": batch / seconds, "jax": jax.__version__,
          "device": jax.devices()[0].device_kind}


def jaxssl_augment(method: str, model: str, steps: int, batch: int) -> dict:
  """Runs in the worker process: the method's two views of a batch, jitted, on the device."""
  import jax
  import numpy as np

  from jaxssl import tasks
  from jaxssl.ops import augment

  config = _config(method, model, "auto", batch, "float32")
  size, channels, _ = MODELS[model]
  recipes = tuple(tasks.get(config).recipes(config))
  images = jax.random.randint(jax.random.key(0), (batch, size, size, channels), 0, 256).astype(np.uint8)
  make = jax.jit(lambda keys, images: augment.views(keys, images, recipes))
  keys = jax.random.split(jax.random.key(1), batch)
  jax.block_until_ready(make(keys, images))
  times = []
  for i in range(max(steps, 100)):                     # a few ms each (noisy): many more repetitions
    keys = jax.block_until_ready(jax.random.split(jax.random.key(i + 2), batch))
    start = time.perf_counter()
    jax.block_until_ready(make(keys, images))
    times.append(time.perf_counter() - start)
  seconds = float(np.median(times))
  return {"batch_s": seconds, "images_per_s": batch / seconds}


FAILED = []  # the measurements of this run that failed


def _measure(run, *args, **kwargs) -> dict | None:
  """One cell: its result, or None after printing why it failed to stderr (one broken cell, e.g. a library
  version on a borrowed GPU machine, must not lose the rest of a run that cannot be repeated cheaply)."""
  try:
    return run(*args, **kwargs)
  except common.CellFailed as error:
    print(f"error: {error}", file=sys.stderr, flush=True)
    FAILED.append(str(error))
    return None


def _worker(args, what: str, method: str, model: str, conv: str, plain_xla: bool) -> dict:
  command = [sys.executable, os.path.abspath(__file__), "--worker", what, "--methods", method, "--models", model,
             "--conv", conv, "--steps", str(args.steps), "--batch", str(_batch(args, model)), "--dtype", args.dtype]
  from jaxssl.common import xla_flags

  flags = os.environ.get("XLA_FLAGS", "")
  return common.last_json(command, {"XLA_FLAGS": flags if plain_xla else xla_flags.with_eigen_convolutions(flags)},
                          args.cell_timeout)


def _lightly(args, what: str, method: str, model: str, steps: int, channels_last: bool = False) -> dict:
  size, channels, _ = MODELS[model]
  return common.last_json([args.lightly_python, common.peer("lightly_step.py"), what, "--method", method,
                           "--model", model, "--batch", str(_batch(args, model)), "--size", str(size), "--channels",
                           str(channels), "--steps", str(steps), "--dtype", args.dtype]
                          + (["--channels_last"] if channels_last else []), timeout=args.cell_timeout)


def _batch(args, model: str) -> int:
  return args.batch or MODELS[model][2]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lightly_python", default=common.LIGHTLY_PYTHON)
  parser.add_argument("--models", default="small_resnet,resnet18")
  parser.add_argument("--methods", default="simclr,byol,vicreg")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--batch", type=int, default=0, help="override every model's batch (0: the defaults above)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="compute dtype of both (jaxssl model.compute_dtype; lightly autocast)")
  parser.add_argument("--no_augment", action="store_true", help="skip timing augmentation")
  parser.add_argument("--augment_only", action="store_true", help="only the augmentation table")
  parser.add_argument("--lightly_channels_last", action="store_true",
                      help="also time lightly with model and inputs in channels-last layout (an extra column)")
  parser.add_argument("--no_baseline", action="store_true", help="skip jaxssl with XLA's defaults")
  parser.add_argument("--cell_timeout", type=float, default=None,
                      help="seconds one measurement may take before its cell is left empty (default: no limit)")
  parser.add_argument("--worker", choices=("step", "augment"), help=argparse.SUPPRESS)
  parser.add_argument("--conv", default="auto", help=argparse.SUPPRESS)
  args = parser.parse_args()

  if args.worker:
    if args.worker == "step":
      result = jaxssl_step(args.methods, args.models, args.conv, args.steps, args.batch, args.dtype)
    else:
      result = jaxssl_augment(args.methods, args.models, args.steps, args.batch)
    print(json.dumps(result), flush=True)
    return
  if not shutil.which(args.lightly_python):
    raise SystemExit(f"error: --lightly_python={args.lightly_python!r} does not exist (see this script's doc)")

  print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores; {args.dtype}; images/s, "
        f"median of {args.steps} steps after compilation\n")
  if not args.augment_only:
    _step_table(args)
  if not args.no_augment:
    _augment_table(args)


def _step_table(args) -> None:
  """The training-step table: jaxssl (and XLA's defaults) against lightly, one row per model and method."""
  extra = " lightly step, channels_last | jaxssl / that |" if args.lightly_channels_last else ""
  print("| model | method | batch | jaxssl, XLA defaults | jaxssl | lightly step | jaxssl / lightly "
        f"| lightly step + its augmentation | jaxssl s / CIFAR-10 epoch | lightly s / epoch |{extra}")
  print("|---" * (10 + 2 * args.lightly_channels_last) + "|")
  ratios, devices, ratios_channels_last = [], {}, []
  for model in args.models.split(","):
    for method in args.methods.split(","):
      batch = _batch(args, model)
      plain = None if args.no_baseline else _measure(_worker, args, "step", method, model, "xla", plain_xla=True)
      ours = _measure(_worker, args, "step", method, model, "auto", plain_xla=False)
      theirs = _measure(_lightly, args, "step", method, model, args.steps)
      with_augment = None
      if theirs and not args.no_augment:
        their_augment = _measure(_lightly, args, "augment", method, model, 3)
        with_augment = their_augment and batch / (theirs["step_s"] + their_augment["batch_s"])
      ratio = ours and theirs and ours["images_per_s"] / theirs["images_per_s"]
      if ratio:
        ratios.append(ratio)
      devices.update(ours=ours or devices.get("ours"), theirs=theirs or devices.get("theirs"))
      cells = [_cell(plain and plain["images_per_s"]), _cell(ours and ours["images_per_s"]),
               _cell(theirs and theirs["images_per_s"]), f"{ratio:.2f}x" if ratio else "failed",
               _cell(with_augment), _cell(ours and 50000 / ours["images_per_s"], "{:.0f}"),
               _cell(theirs and 50000 / theirs["images_per_s"], "{:.0f}")]
      if args.lightly_channels_last:
        theirs_cl = _measure(_lightly, args, "step", method, model, args.steps, channels_last=True)
        ratio_cl = ours and theirs_cl and ours["images_per_s"] / theirs_cl["images_per_s"]
        if ratio_cl:
          ratios_channels_last.append(ratio_cl)
        cells += [_cell(theirs_cl and theirs_cl["images_per_s"]), f"{ratio_cl:.2f}x" if ratio_cl else "failed"]
      print(f"| {model} | {method} | {batch} | " + " | ".join(cells) + " |", flush=True)
  if ratios:
    ours, theirs = devices["ours"], devices["theirs"]
    print(f"\ngeometric mean of jaxssl / lightly: {statistics.geometric_mean(ratios):.2f}x; devices: jaxssl "
          f"{ours['device']} (jax {ours['jax']}), lightly {theirs['device']} (torch {theirs['torch']}, "
          f"{theirs['threads']} threads)")
    if ratios_channels_last:
      print(f"geometric mean of jaxssl / lightly with channels_last: "
            f"{statistics.geometric_mean(ratios_channels_last):.2f}x")
    print()


def _augment_table(args) -> None:
  """Augmentation alone: jaxssl's jitted views against lightly's transforms on PIL images."""
  print(f"Augmentation: jaxssl median of {max(args.steps, 100)} batches, lightly median of 5 batches\n")
  print("| images | method | jaxssl augmentation, images/s | lightly transforms, images/s | ratio |")
  print("|---|---|---|---|---|")
  for model in args.models.split(","):
    size, channels, _ = MODELS[model]
    for method in args.methods.split(","):
      ours = _measure(_worker, args, "augment", method, model, "auto", plain_xla=False)
      theirs = _measure(_lightly, args, "augment", method, model, 5)
      ratio = ours and theirs and f"{ours['images_per_s'] / theirs['images_per_s']:.1f}x"
      print(f"| {size}x{size}x{channels} | {method} | {_cell(ours and ours['images_per_s'], '{:.0f}')} | "
            f"{_cell(theirs and theirs['images_per_s'], '{:.0f}')} | {ratio or 'failed'} |", flush=True)


def _cell(value: float | None, form: str = "{:.1f}") -> str:
  """A table cell: the formatted value, or empty where that measurement was skipped or failed."""
  return form.format(value) if value else ""


if __name__ == "__main__":
  main()
  if FAILED:
    raise SystemExit(f"error: {len(FAILED)} measurement(s) failed; their cells are empty (reasons above)")
