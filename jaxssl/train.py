"""A run: validate, load the data, build the state (fresh, or warm-started from a pretrained run or weights),
lock the workdir, and hand the rest to ``jaxssl.segment`` (restore, train, evaluate, checkpoint, results.json).

``run(config, workdir)`` is what ``python -m jaxssl.main`` calls. The step is ``jaxssl.engine.train_step``'s, mapped
over every device by ``jaxssl.engine.parallel``; evaluation is the config's evaluators (``jaxssl.evals``).
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxssl import data, evals, segment, tasks
from jaxssl.common.config_checks import fail
from jaxssl.common.workdir import resolve
from jaxssl.engine import fsdp
from jaxssl.engine.parallel import make_mesh
from jaxssl.engine.train_step import build, init_state, with_variables
from jaxssl.methods.base import Variables
from jaxssl.ops import optim
from jaxssl.runs import checkpoint, pretrained_run, run_identity, workdir_lock
from jaxssl.schema import schedules, validate
from jaxssl.segment import TrainingError, make_step  # noqa: F401  (their public names here too)
from jaxssl.weights import init_from


def total_steps_for(config: ml_collections.ConfigDict, num_train: int) -> int:
  """``train.num_steps`` if positive, else ``train.num_epochs`` (may be fractional) of the train split; a number
  of epochs that rounds to no step is refused (ConfigError), not run as one step."""
  if config.train.num_steps > 0:
    return int(config.train.num_steps)
  steps = int(round(config.train.num_epochs * num_train / config.train.batch_size))
  if steps < 1:
    fail("train.num_epochs", config.train.num_epochs, f"is less than one step of {config.train.batch_size} of the "
         f"{num_train} training examples; train for at least {config.train.batch_size / num_train:.3g} epochs, "
         "or set train.num_steps")
  return steps


def check(config: ml_collections.ConfigDict) -> None:
  """The config as a run checks it on this machine's devices, before anything else (ConfigError): the schema,
  the method's own fields, and the evaluators it names."""
  validate.validate(config, num_devices=jax.device_count())
  evals.check(config)


class Prepared(NamedTuple):
  """What a run builds before it touches its workdir (``prepare``)."""
  config: ml_collections.ConfigDict             # as written (config.json records it)
  dataset: Any                                  # jaxssl.data.Dataset
  mesh: Any
  trainer: Any                                  # train_step.Trainer, of the config with its schedules in steps
  state: Any                                    # the initial TrainState, placed on the mesh
  total_steps: int
  steps_per_epoch: int
  num_classes: int
  channels: int


def prepare(config: ml_collections.ConfigDict, dataset=None, fresh: bool = True) -> Prepared:
  """Loads and checks the data against the config, fits the schedules to the run's length, builds the trainer
  and the initial state (warm-started from the config's pretrained run or weights when ``fresh``: a run with no
  checkpoint yet). Prints what it found; writes nothing. Raises DataError, ConfigError, CheckpointError."""
  t = time.perf_counter()
  if dataset is None:
    print(f"data: reading {_data_name(config.data)}...", flush=True)
    dataset = data.load(config.data)            # raises DataError before the workdir is touched
  data.check_against_config(dataset, config)
  method = tasks.get(config)
  if method.needs_labels and not dataset.train.labeled:
    raise data.DataError(f"config.method.name={config.method.name!r} needs labels, but "
                         f"config.data.train_split={config.data.train_split!r} has none")
  classes = tasks.classes(config)
  if classes and classes != dataset.num_classes:
    raise data.DataError(f"config.method.num_classes={classes}: the {config.method.name!r} model "
                         f"predicts that many classes, but the data has {dataset.num_classes}")
  evaluates = dataset.eval_train is not None and dataset.test is not None
  asked = {"eval.knn_at_init": config.eval.knn_at_init, "eval.every_epochs": config.eval.every_epochs > 0,
           "eval.linear_probe": config.eval.linear_probe, "eval.at_end": config.eval.at_end}
  if not evaluates and any(asked.values()):
    field = next(k for k, v in asked.items() if v)
    raise data.DataError(f"config.{field}={config.eval[field.split('.')[1]]!r} asks for evaluation, but "
                         f"config.data.eval_train_split={config.data.eval_train_split!r} / "
                         f"config.data.test_split={config.data.test_split!r} have no labels; turn it off or "
                         "name labeled splits")
  channels = dataset.train.image_shape[-1]
  print(f"data: {len(dataset.train)} training images of {'x'.join(map(str, dataset.train.image_shape))}"
        + (f", {len(dataset.test)} test" if dataset.test is not None else "")
        + (f", {dataset.num_classes} classes" if dataset.num_classes else "") + f" ({time.perf_counter() - t:.0f} s)",
        flush=True)

  mesh = make_mesh()
  steps_per_epoch = len(dataset.train) // config.train.batch_size
  total_steps = total_steps_for(config, len(dataset.train))
  # The step's config: schedules given in epochs counted in this data's epochs (config.json keeps them as written).
  step_config = schedules.in_steps(config, steps_per_epoch)
  schedules.check(step_config, total_steps)      # a schedule that cannot fit the run: one line, nothing written
  print(f"devices: {jax.device_count()} {jax.devices()[0].platform} in {jax.process_count()} process(es), "
        f"{jax.local_device_count()} in process {jax.process_index()}; global batch {config.train.batch_size}, "
        f"{total_steps} steps", flush=True)
  for note in (schedules.in_epochs_notes(config, step_config, steps_per_epoch)
               + schedules.notes(step_config, total_steps, steps_per_epoch)):
    print(f"note: {note}", flush=True)
  num_classes = dataset.num_classes if dataset.train.labeled else 0
  trainer = build(step_config, total_steps, num_classes=num_classes, steps_per_epoch=steps_per_epoch)
  if num_classes and trainer.probe is None and trainer.method.no_online_probe and \
      "online_probe" in config.eval.evaluators:      # MAE, I-JEPA: off whatever eval.online_probe says
    print(f"online probe: off for method {config.method.name!r} ({trainer.method.no_online_probe})", flush=True)
  starter = start_from(config, channels)         # checked on every start; used on a fresh one
  starter = starter if fresh else None
  if config.parallel.fsdp:
    state = init_sharded(config, trainer, jax.random.key(config.seed), channels, mesh)
    optim.check_against_params(config, state.params)
    if starter is not None:
      state = warm_start_sharded(config, trainer, state, mesh, starter)   # CheckpointError if it cannot
  else:
    initial = init_state(trainer, jax.random.key(config.seed), channels)
    optim.check_against_params(config, initial.params)  # rules that cover nothing are refused (ConfigError)
    if starter is not None:
      initial = warm_start(trainer, initial, starter)   # a pretrained encoder (CheckpointError if it cannot)
    state = place_state(config, initial, mesh)
    del initial
  return Prepared(config, dataset, mesh, trainer, state, total_steps, steps_per_epoch, num_classes, channels)


def _data_name(d: ml_collections.ConfigDict) -> str:
  """The data a config names, for the first line a run prints."""
  if d.source == "tfds":
    return f"{d.dataset} (TFDS{', ' + d.data_dir if d.data_dir else ''}), into memory" if d.cache else d.dataset
  if d.source == "synthetic":
    return f"{d.synthetic_num_examples} synthetic images"
  return f"{d.source} {d.data_dir}"


def run(config: ml_collections.ConfigDict, workdir: str, dataset=None,
        allow_change: Sequence[str] = ()) -> dict[str, float]:
  """Validates the config, trains (resuming from the workdir's latest checkpoint), evaluates and writes
  ``results.json``; returns the results.

  ``dataset`` (a ``jaxssl.data.Dataset``, e.g. of in-memory ArraySources) replaces the config's data source.
  Checkpoints go to ``workdir/checkpoints`` every ``train.checkpoint_every`` steps, at the end, and on SIGTERM
  (then the run returns early with ``results["preempted"] = True``). A workdir holding a run started with
  another config is refused (``jaxssl.runs.run_identity``) unless the differing fields are in ``allow_change``; a
  finished run returns its results without training or evaluating again.
  """
  check(config)
  run_identity.check_writable(workdir)
  root = resolve(workdir)
  changes = run_identity.check_same_run(root, config, allow_change, workdir)   # before minutes of data loading
  finished = None if changes else finished_before(root, config)
  if finished is not None:                       # the same run, already finished: its results, no data read
    segment.say_finished(workdir, root, *finished)
    return finished[0]
  p = prepare(config, dataset, fresh=not checkpoint.has_checkpoints(root))

  root.mkdir(parents=True, exist_ok=True)
  lock = workdir_lock.WorkdirLock(root, workdir).acquire() if jax.process_index() == 0 else None
  if lock is not None and lock.note:
    print(f"workdir: {lock.note}", flush=True)
  try:
    # From the lock on, SIGTERM and Ctrl-C stop the run cleanly wherever it is (restoring, compiling, in an
    # evaluation, waiting on a read): it releases the lock instead of dying with it held.
    with segment.Preemption() as preemption:
      setup = segment.Setup(root, workdir, config, p.dataset, p.mesh, p.trainer, p.state, p.total_steps,
                            p.steps_per_epoch, p.num_classes, p.channels, changes,
                            run_identity.TRAIN_SIZE in allow_change, lock)
      return segment.run_segment(setup, preemption)
  finally:
    if lock is not None:
      lock.release()


def finished_before(root, config: ml_collections.ConfigDict) -> tuple[dict, int] | None:
  """(results, total steps) of the workdir's run when results.json says it finished the steps this config
  asks of the data it recorded (``train_examples``), and its newest checkpoint is that step or there is none;
  else None (the segment decides, with the data)."""
  recorded = run_identity.finished_results(root, 0)
  examples = recorded.get("train_examples") if recorded else None
  if not isinstance(examples, int) or examples <= 0:
    return None
  try:
    total_steps = total_steps_for(config, examples)
  except validate.ConfigError:
    return None
  latest = checkpoint.newest_step(root)
  if int(recorded.get("steps", 0)) < total_steps or (latest is not None and latest < total_steps):
    return None
  return recorded, total_steps


def state_shardings(config: ml_collections.ConfigDict, state, mesh):
  """Where each leaf of the state (concrete or abstract) lives on the mesh: everything replicated, or with
  ``parallel.fsdp`` the parameters, optimizer state and EMA target split over the devices (``jaxssl.engine.fsdp``)."""
  if config.parallel.fsdp:
    return fsdp.state_shardings(state, mesh, config.parallel.fsdp_min_size)
  return jax.tree.map(lambda _: NamedSharding(mesh, P()), state)


def init_sharded(config: ml_collections.ConfigDict, trainer, key: jax.Array, channels: int, mesh):
  """``init_state`` made where it lives: jitted with the state's shardings as its outputs, so each device
  computes only its shards and no device holds the whole state on the way (ViT-H's, with AdamW and a teacher,
  is about 10 GB). The same values as ``init_state`` made on one device and then placed: both are one jitted
  program (equal bit for bit for the tiny SimCLR, DINO and MAE on 8 devices)."""
  abstract = jax.eval_shape(lambda: init_state(trainer, key, channels))
  return jax.jit(lambda k: init_state(trainer, k, channels),
                 out_shardings=state_shardings(config, abstract, mesh))(key)


def place_state(config: ml_collections.ConfigDict, state, mesh):
  """The state on the mesh, as ``state_shardings`` says."""
  return jax.device_put(state, state_shardings(config, state, mesh))


def start_from(config: ml_collections.ConfigDict, channels: int):
  """The warm start of a new run: fresh Variables -> those its first step starts from, or None (the fresh
  initialisation). A fine-tuning's pretrained jaxssl run (``method.init="pretrained"`` with
  ``method.pretrained``: ``jaxssl.runs.pretrained_run``), or ``model.init_from``'s imported weights
  (``jaxssl.weights.init_from``, checked against the config first). Called before the workdir is touched; the
  starter runs once, never on resume or in evaluation."""
  method = config.method
  from_run = method.get("init") == "pretrained" and bool(method.get("pretrained"))
  if from_run and config.model.init_from:
    fail("model.init_from", config.model.init_from, "and method.pretrained both name the encoder's start: keep one")
  if from_run:
    return pretrained_run.starter(method.pretrained, method.pretrained_step)
  if config.model.init_from:
    init_from.check(config)
    return init_from.starter(config, channels)
  return None


def warm_start(trainer, state, starter):
  """The fresh state with the variables ``starter`` (``start_from``'s) makes of it, its optimizer state and EMA
  target started from them."""
  # On the host: arrays restored onto one local device would need a cross-host transfer to be replicated.
  variables = jax.device_get(starter(Variables(state.params, state.batch_stats)))
  return with_variables(trainer, state, variables.params, variables.batch_stats)


def warm_start_sharded(config: ml_collections.ConfigDict, trainer, state, mesh, starter):
  """``warm_start`` for a state made in place (``init_sharded``, ``parallel.fsdp``): the pretrained variables
  are read on the host, each device receives only its shards of them (``make_array_from_callback``, so in
  every process only its own devices' slices are sent), and the optimizer state and EMA target are made from
  them where they live (jitted with the state's shardings as outputs). No device holds the whole state."""
  variables = starter(Variables(state.params, state.batch_stats))
  shardings = state_shardings(config, state, mesh)

  def place(value, sharding):
    if isinstance(value, jax.Array):            # a fresh leaf the method kept (the new head): already placed
      return value
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

  params = jax.tree.map(place, variables.params, shardings.params)
  batch_stats = jax.tree.map(place, variables.batch_stats, shardings.batch_stats)
  # The fresh optimizer state and target are made again from the new variables: not passed in.
  rest = state.replace(params=None, batch_stats=None, opt_state=None, ema_params=None, ema_batch_stats=None)
  started = jax.jit(lambda fresh, p, b: with_variables(trainer, fresh, p, b), out_shardings=shardings)
  return started(rest, params, batch_stats)


