"""The training loop: validate, build, restore, step, log, evaluate, checkpoint, and one exit path.

``run(config, workdir)`` is what ``python -m jaxssl.main`` calls. The step is ``jaxssl.engine.train_step``'s, mapped
over every device by ``jaxssl.engine.parallel``; evaluation is the config's evaluators (``jaxssl.evals``).
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple, Sequence

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxssl import data, evals, tasks
from jaxssl.common.config_checks import fail
from jaxssl.common.progress import Progress
from jaxssl.common.workdir import resolve
from jaxssl.data import bad_images
from jaxssl.engine import fsdp, speed
from jaxssl.engine.cadence import Cadence
from jaxssl.engine.parallel import make_mesh, shard_batch, shard_step
from jaxssl.engine.train_step import build, finite_names, init_state, make_per_device_step, with_variables
from jaxssl.methods.base import Variables
from jaxssl.ops import optim
from jaxssl.runs import checkpoint, pretrained_run, run_identity, workdir_lock
from jaxssl.runs.checkpoint import CheckpointError
from jaxssl.runs.metrics import MetricsWriter
from jaxssl.schema import validate
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


class TrainingError(RuntimeError):
  """The run cannot go on (a non-finite loss, gradient or updated state); the message names the step."""


class _Preemption:
  """Whether to save and stop at a step boundary because of SIGTERM (preemption) or Ctrl-C.

  One process: SIGTERM and SIGINT handlers set ``requested`` (the signal's name); a second Ctrl-C raises
  KeyboardInterrupt at once (``jaxssl.main`` turns it into one line). Several processes: JAX's preemption
  service (which catches the scheduler's notice) agrees on one step for all of them,
  ``multihost_utils.reached_preemption_sync_point``, so every process saves the same step; it must be asked at
  every step (Ctrl-C there stops at once).
  """

  def __init__(self):
    self.requested = ""
    self._previous = {}
    self._multi = jax.process_count() > 1

  def __enter__(self):
    import signal
    import threading

    if not self._multi and threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    import signal
    import sys

    if signum == signal.SIGINT:
      if self.requested:
        raise KeyboardInterrupt
      print("\nCtrl-C: saving a checkpoint at the next step boundary (Ctrl-C again stops at once, unsaved)",
            file=sys.stderr, flush=True)
    self.requested = self.requested or ("Ctrl-C" if signum == signal.SIGINT else "SIGTERM")

  def reached(self, step: int) -> bool:
    if self._multi:
      from jax.experimental import multihost_utils
      return multihost_utils.reached_preemption_sync_point(step)
    return bool(self.requested)

  def __exit__(self, *exc):
    import signal

    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


def _check_finite(metrics, step: int, names: list[str]) -> None:
  if float(metrics["finite"]) != 1.0:
    flags = np.asarray(metrics["finite_leaves"])
    first = names[int(np.argmin(flags))] if len(names) == len(flags) else "?"
    raise TrainingError(f"step {step}: not finite: {first} (loss={float(metrics['loss'])}); nothing from this "
                        "step on is saved, and the workdir resumes from its last checkpoint; lower "
                        "config.optim.base_lr (resume with --allow_change=optim.base_lr) or check the data")


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
  validate.validate(config, num_devices=jax.device_count())
  evals.check(config)
  run_identity.check_writable(workdir)
  root = resolve(workdir)
  changes = run_identity.check_same_run(root, config, allow_change, workdir)   # before minutes of data loading
  dataset = dataset or data.load(config.data)   # raises DataError before the workdir is touched
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

  mesh = make_mesh()
  steps_per_epoch = len(dataset.train) // config.train.batch_size
  total_steps = total_steps_for(config, len(dataset.train))
  print(f"devices: {jax.device_count()} {jax.devices()[0].platform} in {jax.process_count()} process(es), "
        f"{jax.local_device_count()} in process {jax.process_index()}; global batch {config.train.batch_size}, "
        f"{total_steps} steps", flush=True)
  num_classes = dataset.num_classes if dataset.train.labeled else 0
  trainer = build(config, total_steps, num_classes=num_classes, steps_per_epoch=steps_per_epoch)
  if config.eval.online_probe and num_classes and trainer.probe is None:
    print(f"online probe: off for method {config.method.name!r} ({trainer.method.no_online_probe})", flush=True)
  channels = dataset.train.image_shape[-1]
  starter = start_from(config, channels)
  warm = starter is not None and not checkpoint.has_checkpoints(root)
  if config.parallel.fsdp:
    state = init_sharded(config, trainer, jax.random.key(config.seed), channels, mesh)
    optim.check_against_params(config, state.params)
    if warm:
      state = warm_start_sharded(config, trainer, state, mesh, starter)   # CheckpointError if it cannot
  else:
    initial = init_state(trainer, jax.random.key(config.seed), channels)
    optim.check_against_params(config, initial.params)  # rules that cover nothing are refused (ConfigError)
    if warm:
      initial = warm_start(trainer, initial, starter)   # a pretrained encoder (CheckpointError if it cannot)
    state = place_state(config, initial, mesh)
    del initial

  root.mkdir(parents=True, exist_ok=True)
  lock = workdir_lock.WorkdirLock(root, workdir).acquire() if jax.process_index() == 0 else None
  if lock is not None and lock.note:
    print(f"workdir: {lock.note}", flush=True)
  try:
    # From the lock on, SIGTERM and Ctrl-C stop the run cleanly wherever it is (restoring, compiling, in an
    # evaluation, waiting on a read): it releases the lock instead of dying with it held.
    with _Preemption() as preemption:
      return _run_in(_Setup(root, workdir, config, dataset, mesh, trainer, state, total_steps, steps_per_epoch,
                            num_classes, channels, changes,
                            run_identity.TRAIN_SIZE in allow_change, lock), preemption)
  finally:
    if lock is not None:
      lock.release()


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


def make_step(config: ml_collections.ConfigDict, trainer, state, mesh):
  """The jitted step for a state placed by ``place_state``."""
  if config.parallel.fsdp:
    return fsdp.fsdp_step(trainer, state, mesh, config.parallel.fsdp_min_size, config.parallel.fsdp_per_block)
  return shard_step(make_per_device_step(trainer), mesh)


def _compiled_step(step_fn, state, batch, global_batch: int, step: int):
  """The step compiled ahead of time for this state and batch (the loop's one compilation), and a StepTimer
  with its FLOPs per device and the device's peak; prints what speed figures the log will carry."""
  compiled = step_fn.lower(state, batch).compile()
  flops = speed.flops_per_device(compiled)
  kind = jax.devices()[0].device_kind
  peak = speed.peak_tflops(kind)
  print(speed.describe(flops, peak, kind, global_batch, jax.device_count()), flush=True)
  return compiled, speed.StepTimer(global_batch, step, flops, peak)


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


class _Setup(NamedTuple):
  """What ``run`` has checked and built before it locks the workdir."""
  root: Any                    # the workdir as an etils path
  workdir: str
  config: ml_collections.ConfigDict
  dataset: Any                 # jaxssl.data.Dataset
  mesh: Any
  trainer: Any                 # train_step.Trainer
  state: Any                   # the initial TrainState, replicated over the mesh
  total_steps: int
  steps_per_epoch: int
  num_classes: int
  channels: int
  changes: list[str]           # config fields allowed to differ from the workdir's run
  allow_size_change: bool      # --allow_change names run_identity.TRAIN_SIZE
  lock: Any                    # the workdir_lock.WorkdirLock held (process 0), else None


def _run_in(setup: _Setup, preemption: _Preemption) -> dict[str, float]:
  """The run proper, with the workdir locked: restore, train, evaluate, write results."""
  (root, workdir, config, dataset, mesh, trainer, state, total_steps, steps_per_epoch, num_classes, channels,
   changes, allow_size_change, lock) = setup

  def still_ours() -> None:
    """The lock read now (not at the last heartbeat) before anything is written: a run whose lock another run
    took stops without writing more."""
    if lock is not None:
      lock.check()

  checkpointer = checkpoint.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  meta = {"data_position": 0, "evals": [], "results": {}}
  if checkpointer.latest_step() is not None:
    # A checkpoint of another model raises (nothing in the workdir has changed); damaged ones are moved aside.
    state, meta, damaged = checkpointer.restore_intact(state)
    for why in damaged:
      print(f"warning: {why}; moved aside to {checkpointer.directory}/damaged-*", flush=True)
    print(f"resuming from step {int(state.step)} ({checkpointer.directory})", flush=True)
    saved_size = meta.get("train_examples")
    if saved_size is not None and saved_size != len(dataset.train) and not allow_size_change:
      checkpointer.close()
      raise run_identity.WorkdirError(
          f"config.data.train_split={config.data.train_split!r} has {len(dataset.train)} examples, but the run in "
          f"--workdir={workdir!r} was trained on {saved_size} (the steps, schedule and data order depend on it); "
          f"restore the data, pass --allow_change={run_identity.TRAIN_SIZE} to go on with it, or use a new workdir")
  # Finished: results.json records this many steps, and the checkpoints agree or are gone.
  finished = run_identity.finished_results(root, total_steps)
  if finished is None and checkpointer.latest_step() is None:
    done_before = run_identity.finished_results(root, 0)
    if done_before is not None:
      checkpointer.close()
      raise run_identity.WorkdirError(
          f"--workdir={workdir!r} holds a finished run ({done_before.get('steps', '?')} steps, results.json) whose "
          f"checkpoints are gone: it cannot go on to {total_steps} steps, and starting again from step 0 would "
          "overwrite its results; restore its checkpoints, or use a new workdir")
  still_ours()
  if jax.process_index() == 0 and (changes or not (root / "config.json").exists()
                                  or checkpointer.latest_step() is None):
    if changes:
      run_identity.record_changes(root, changes, int(state.step))
      print(f"config changes allowed on resume (recorded in config_changes.jsonl): {', '.join(changes)}",
            flush=True)
    (root / "config.json").write_text(config.to_json_best_effort(indent=1))
  if finished is not None and (int(state.step) >= total_steps or checkpointer.latest_step() is None):
    checkpointer.close()
    print(f"the run in {workdir} is finished (step {finished.get('steps', total_steps)} of {total_steps}): "
          f"{evals.summary(finished) or 'no evaluation'}; its results are in {root / 'results.json'}",
          flush=True)
    return finished
  step_fn = make_step(config, trainer, state, mesh)
  names = finite_names(state)                     # of the NaN guard's flags
  writer = MetricsWriter(workdir, enabled=jax.process_index() == 0, resume_step=int(state.step))
  stop = lambda: bool(preemption.requested)
  # compiles the encoder's feature function once for the run; SIGTERM stops an evaluation between batches
  evaluator = evals.Evaluator(trainer, mesh, stop=stop)
  cadence = Cadence.of(config, total_steps, steps_per_epoch)

  results: dict[str, float] = dict(meta["results"])
  eval_history = list(meta["evals"])
  first_step = int(state.step)

  def stopped_before_training(during: str) -> dict:
    checkpointer.close()
    writer.close()
    saved = (f"the checkpoint of step {first_step} it resumed from is as it was" if first_step else
             "nothing was trained, so there is nothing to save")
    print(f"{preemption.requested}: stopped {during}, before the first step of this segment; {saved}; run the "
          "same command again to go on", flush=True)
    return {**results, "preempted": True}

  if preemption.requested:
    return stopped_before_training("while the run was being set up")
  if config.eval.knn_at_init and first_step == 0:
    try:
      results["knn_random_init"] = evaluator.evaluate(state, dataset, only=("knn",))["knn_accuracy"]
    except data.Stopped:
      return stopped_before_training("during the kNN at initialisation")
    still_ours()
    writer.write(0, {"knn_accuracy": results["knn_random_init"]}, prefix="eval")
    start_point = (f"as imported from {config.model.init_from}" if config.model.init_from else
                   "at random initialisation")
    print(f"kNN accuracy of the encoder {start_point}: {100 * results['knn_random_init']:.2f}%", flush=True)

  def train_seconds() -> float:
    """Training time of the whole run so far: earlier segments' (from the checkpoint) plus this one's."""
    return results.get("train_seconds", 0.0) + time.perf_counter() - start - eval_seconds

  last_saved = [first_step]                       # the step of the newest checkpoint (a list: set in save)

  initial_largest = meta.get("initial_largest_parameter")      # of the run's first state, for _divergence_note
  if first_step == 0:
    initial_largest = float(_largest_parameter(state.params))

  def save(step: int, position: int) -> None:
    still_ours()
    last_saved[0] = step
    # Training time so far travels with the checkpoint, so a resumed run reports the whole run's; the step
    # history does not (it is in metrics.jsonl, made durable first).
    writer.flush()
    so_far = {**results, "train_seconds": train_seconds()}
    checkpointer.save(step, state, {"data_position": position, "evals": eval_history, "results": so_far,
                                    "total_steps": total_steps, "num_classes": num_classes, "channels": channels,
                                    "train_examples": len(dataset.train),
                                    "largest_parameter": float(_largest_parameter(state.params)),
                                    "initial_largest_parameter": initial_largest,
                                    "config": json.loads(config.to_json_best_effort())})

  record = "bad_images.jsonl" if jax.process_index() == 0 else f"bad_images.process-{jax.process_index()}.jsonl"
  bad_images.attach(dataset, config.data.max_bad_images, root / record)
  crops = None
  if data.crops_on_host(config.data):
    crops = data.host_cropper(config, trainer.recipes, channels)
    also = (", with their flips and RandAugment (augment.randaugment_on='auto')"
            if any(spec.randaugment is not None for spec in crops.specs) else "")
    print(f"data: random resized crops on the host from the full images{also}, {crops.workers} worker "
          f"thread(s) (config.data.crop_on={config.data.crop_on!r})", flush=True)
  pipeline = data.Pipeline(dataset.train, config.train.batch_size, seed=config.seed,
                           position=int(meta["data_position"]), process_index=jax.process_index(),
                           process_count=jax.process_count(), prefetch=config.data.prefetch,
                           transform=lambda b: shard_batch(b, mesh), crops=crops)
  progress = Progress(total_steps, enabled=jax.process_index() == 0)
  timer = None                                    # a speed.StepTimer once the step is compiled
  start = time.perf_counter()
  eval_seconds = 0.0
  pending = None                                  # the previous step's metrics, checked one step late
  # One exit path: however the loop ends (done, preempted, a non-finite loss), the checkpoint in flight is
  # finished, metrics are flushed and the data workers stop. The signal handlers stay until results.json is
  # written, so SIGTERM or Ctrl-C during the final save or evaluation is a clean stop too.
  try:
    with pipeline:
      for step in range(first_step, total_steps):
        waited = time.perf_counter()
        try:
          batch = pipeline.next(stop=lambda: bool(preemption.requested), timeout_s=config.data.read_timeout_s)
        except (data.Stopped, data.ReadTimeout) as e:
          # Waiting on a slow or hung read: the state is at a step boundary, so it is saved as it is.
          if step != last_saved[0] and step > 0 and jax.process_count() == 1:
            save(step, pipeline.position)
          kept = (f"the state at step {step} is saved" if step == last_saved[0] and step > 0 else
                  "nothing was trained, so there is no checkpoint" if step == 0 else
                  f"the checkpoint of step {last_saved[0]} is the newest")
          if isinstance(e, data.ReadTimeout):
            raise data.ReadTimeout(f"{e}; {kept}") from None
          progress.close()
          print(f"{preemption.requested}: {kept} (the input pipeline was waiting on a read); run the same command "
                "again to resume", flush=True)
          results["preempted"] = True
          return results
        waited = time.perf_counter() - waited
        if timer is None:
          step_fn, timer = _compiled_step(step_fn, state, batch, config.train.batch_size, step)
        timer.data_wait(waited)
        state, metrics = step_fn(state, batch)
        del batch
        if pending is not None:
          _check_finite(*pending)
        pending = (metrics, step + 1, names)
        done = step + 1
        if step == first_step and not cadence.log(done):
          print(f"step {done}: loss {float(metrics['loss']):.4g}, the first step of this segment, compiled and "
                f"run in {time.perf_counter() - start:.0f} s; the log follows every {cadence.log_every} steps",
                flush=True)
        preempted = preemption.reached(done)
        if not (cadence.any(done) or preempted):
          continue
        _check_finite(*pending)                 # never log, evaluate or save a non-finite state
        pending = None
        still_ours()
        if cadence.log(done):
          shown = {k: float(v) for k, v in metrics.items() if not k.startswith("finite")}
          shown.update(timer.interval(done))
          progress.log(done, shown)
          results.setdefault("first_loss", shown["loss"])
          results["final_loss"] = shown["loss"]
          writer.write(done, shown)
        if cadence.evaluate(done):
          t = time.perf_counter()
          try:
            scores = evaluator.evaluate(state, dataset)
          except data.Stopped:                  # SIGTERM during the evaluation: the state is at a boundary
            if done < total_steps:
              save(done, pipeline.position)
            progress.close()
            print(f"{preemption.requested}: stopped during the evaluation at step {done}; saved a checkpoint "
                  "there; run the same command again to resume", flush=True)
            results["preempted"] = True
            return results
          eval_seconds += time.perf_counter() - t
          still_ours()
          eval_history.append({"step": done, "epoch": done / steps_per_epoch, **scores})
          writer.write(done, scores, prefix="eval")
          progress.close()
          print(f"step {done} (epoch {done / steps_per_epoch:.2f}): {evals.summary(scores)}", flush=True)
          timer.restart(done)
        if preempted and done < total_steps:
          save(done, pipeline.position)
          progress.close()
          print(f"{preemption.requested or 'SIGTERM'}: saved a checkpoint at step {done}; run the same "
                "command again to resume", flush=True)
          results["preempted"] = True
          return results
        if cadence.checkpoint(done):
          save(done, pipeline.position)
          timer.restart(done)
    jax.block_until_ready(state)
    progress.close()
    results["train_seconds"] = train_seconds()
    results["steps"] = total_steps
    results["train_examples"] = len(dataset.train)
    results.setdefault("first_loss", float("nan"))
    results.setdefault("final_loss", float("nan"))
    checkpointer.wait()                         # the final checkpoint is on disk before the evaluation
    if preemption.requested:
      print(f"{preemption.requested}: the final checkpoint (step {total_steps}) is saved; run the same command "
            "again for the final evaluation and results.json", flush=True)
      results["preempted"] = True
      return results

    if config.eval.at_end:
      try:
        scores = evaluator.evaluate(state, dataset, final=True)
      except data.Stopped:
        print(f"{preemption.requested}: stopped during the final evaluation; the final checkpoint (step "
              f"{total_steps}) is saved; run the same command again for the final evaluation and results.json",
              flush=True)
        results["preempted"] = True
        return results
      still_ours()
      results.update(scores)
      eval_history.append({"step": total_steps, "epoch": total_steps / steps_per_epoch, **scores})
      writer.write(total_steps, scores, prefix="eval")
      if "knn_accuracy" in scores:
        print(f"kNN accuracy ({config.method.name}, {total_steps} steps): {100 * scores['knn_accuracy']:.2f}%",
              flush=True)
      print(f"final: {evals.summary(scores)}", flush=True)
  except TrainingError as e:
    raise TrainingError(f"{e}{_divergence_note(checkpointer, initial_largest)}") from None
  finally:
    checkpointer.close()
    writer.close()
  if jax.process_index() == 0:
    still_ours()
    summary = {"results": results, "evals": eval_history, "history": writer.history(), "config": config.to_dict()}
    _write_results(root / "results.json", json.dumps(summary, indent=1, default=str))
  return results


@jax.jit
def _largest_parameter(params) -> jax.Array:
  """The largest magnitude of any parameter: recorded with each checkpoint, so that after a non-finite step the
  run can tell a checkpoint that had already diverged from one worth resuming."""
  return jax.numpy.max(jax.numpy.stack([jax.numpy.max(jax.numpy.abs(x)).astype(jax.numpy.float32)
                                         for x in jax.tree.leaves(params)]))


# A checkpoint whose largest parameter has grown this many times past the initial one is taken for diverged.
DIVERGED_GROWTH = 100.0


def _divergence_note(checkpointer, initial: float | None) -> str:
  """After a non-finite step: whether the newest checkpoint had already diverged (its largest parameter
  ``DIVERGED_GROWTH`` times the initial one), and then which kept checkpoint to resume from instead and how."""
  if not initial:
    return ""
  try:
    checkpointer.wait()
    rows = []
    for step in sorted(checkpointer.steps(), reverse=True):
      largest = checkpointer.restore_meta(step).get("largest_parameter")
      if largest is not None:
        rows.append((step, float(largest)))
  except CheckpointError:
    return ""
  grown = lambda value: not np.isfinite(value) or value > DIVERGED_GROWTH * initial   # noqa: E731
  if not rows or not grown(rows[0][1]):
    return ""
  newest, largest = rows[0]
  note = (f"; but the newest checkpoint (step {newest}) had already diverged (its largest parameter is "
          f"{largest:,.4g}, against {initial:.3g} at initialisation), so resuming from it will likely fail again")
  sound = [step for step, value in rows if not grown(value)]
  if not sound:
    return note + "; no kept checkpoint is from before that: start again in a new workdir with the lower rate"
  later = [step for step, _ in rows if step > sound[0]]
  moves = "; ".join(f"mv {checkpointer.directory}/{s} {checkpointer.directory}/diverged-{s}" for s in later)
  return note + f"; step {sound[0]} had not: to resume from it, move the newer ones aside ({moves})"


def _write_results(path, text: str) -> None:
  """Writes results.json whole or not at all (a temporary file renamed over it); an OS error is one line."""
  partial = path.parent / (path.name + ".partial")
  try:
    partial.write_text(text)
    partial.replace(path)
  except OSError as e:
    raise run_identity.WorkdirError(f"{path} could not be written ({type(e).__name__}: {e.strerror or e}); the "
                                    "final checkpoint is saved: fix the workdir and run the same command again "
                                    "to write it") from None
