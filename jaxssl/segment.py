"""One segment of a run, with its workdir locked: restore, the kNN at initialisation, train, the final evaluation
and results.json, each a phase of ``Segment``, and one exit path (``run_segment``). ``jaxssl.train.run`` checks
the config and data, builds the state and takes the lock before it hands a ``Setup`` here.
"""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

import jax
import ml_collections
import numpy as np

from jaxssl import data, evals, tasks
from jaxssl.common.progress import Progress
from jaxssl.data import bad_images
from jaxssl.engine import fsdp, speed
from jaxssl.engine.cadence import Cadence
from jaxssl.engine.parallel import shard_batch, shard_step
from jaxssl.engine.train_step import finite_names, make_per_device_step
from jaxssl.runs import checkpoint, pictures, run_identity
from jaxssl.runs.checkpoint import CheckpointError
from jaxssl.runs.metrics import MetricsWriter


class TrainingError(RuntimeError):
  """The run cannot go on (a non-finite loss, gradient or updated state); the message names the step."""


class Preemption:
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


def make_step(config: ml_collections.ConfigDict, trainer, state, mesh):
  """The jitted step for a state placed by ``place_state``."""
  if config.parallel.fsdp:
    return fsdp.fsdp_step(trainer, state, mesh, config.parallel.fsdp_min_size, config.parallel.fsdp_per_block)
  return shard_step(make_per_device_step(trainer), mesh)


def _compiled_step(step_fn, state, batch, global_batch: int, step: int):
  """The step compiled ahead of time for this state and batch (the loop's one compilation), and a StepTimer
  with its FLOPs per device and the device's peak; prints what speed figures the log will carry."""
  print("compiling the step (first time only)...", flush=True)
  t = time.perf_counter()
  compiled = step_fn.lower(state, batch).compile()
  flops = speed.flops_per_device(compiled)
  kind = jax.devices()[0].device_kind
  peak = speed.peak_tflops(kind)
  print(f"compiled in {time.perf_counter() - t:.0f} s; "
        f"{speed.describe(flops, peak, kind, global_batch, jax.device_count())}", flush=True)
  return compiled, speed.StepTimer(global_batch, step, flops, peak)


def input_pipeline(config: ml_collections.ConfigDict, dataset, trainer, channels: int, mesh,
                   position: int) -> data.Pipeline:
  """The training batches from ``position`` on (``jaxssl.data.Pipeline``), sharded over ``mesh``: the views are
  made in the step, or the random resized crops here on the host (``data.crops_on_host``), which it says."""
  crops = None
  if data.crops_on_host(config.data):
    crops = data.host_cropper(config, trainer.recipes, channels)
    also = (", with their flips and RandAugment (augment.randaugment_on='auto')"
            if any(spec.randaugment is not None for spec in crops.specs) else "")
    print(f"data: random resized crops on the host from the full images{also}, {crops.workers} worker "
          f"thread(s) (config.data.crop_on={config.data.crop_on!r})", flush=True)
  return data.Pipeline(dataset.train, config.train.batch_size, seed=config.seed, position=position,
                       process_index=jax.process_index(), process_count=jax.process_count(),
                       prefetch=config.data.prefetch, transform=lambda b: shard_batch(b, mesh), crops=crops)


def say_finished(workdir: str, root, results: dict, total_steps: int) -> None:
  """The line a rerun of a finished run prints instead of training."""
  print(f"the run in {workdir} is finished (step {results.get('steps', total_steps)} of {total_steps}): "
        f"{evals.summary(results) or 'no evaluation'}; its results are in {root / 'results.json'}", flush=True)


class Setup(NamedTuple):
  """What ``run`` has checked and built before it locks the workdir."""
  root: Any                    # the workdir as an etils path
  workdir: str
  config: ml_collections.ConfigDict
  dataset: Any                 # jaxssl.data.Dataset
  mesh: Any
  trainer: Any                 # train_step.Trainer
  state: Any                   # the initial TrainState, placed on the mesh
  total_steps: int
  steps_per_epoch: int
  num_classes: int
  channels: int
  changes: list[str]           # config fields allowed to differ from the workdir's run
  allow_size_change: bool      # --allow_change names run_identity.TRAIN_SIZE
  lock: Any                    # the workdir_lock.WorkdirLock held (process 0), else None


class _Stop(Exception):
  """A clean stop before the run's end (SIGTERM, Ctrl-C, a stopped read), after what can be saved is saved:
  the line to print. The run returns its results so far with ``preempted``."""


def run_segment(setup: Setup, preemption: Preemption) -> dict[str, float]:
  """The run proper, with the workdir locked, in phases: restore, (the kNN at initialisation,) train, the final
  evaluation, results.json. One exit path: however it ends, the checkpoint in flight is finished and the
  metrics flushed; a stop (``_Stop``) returns the results so far."""
  segment = Segment(setup, preemption)
  finished = segment.restore()
  if finished is not None:
    return finished
  try:
    segment.evaluate_at_init()
    segment.train()
    segment.final_evaluation()
  except _Stop as stop:
    segment.progress.close()
    print(stop, flush=True)
    return {**segment.results, "preempted": True}
  except TrainingError as e:
    raise TrainingError(f"{e}{_divergence_note(segment.checkpointer, segment.initial_largest)}") from None
  finally:
    segment.close()
  segment.write_results()
  return segment.results


class Segment:
  """One segment of a run (from a fresh start or a checkpoint to the end or a stop), its phases as methods.

  Attributes read across the phases: ``state``, ``results`` (losses, times, scores: results.json's),
  ``eval_history`` (every evaluation), ``last_saved`` (the step of the newest checkpoint), and the run's
  checkpointer, metrics writer and evaluator."""

  def __init__(self, setup: Setup, preemption: Preemption):
    self.setup, self.preemption, self.config = setup, preemption, setup.config
    self.state = setup.state
    self.checkpointer = checkpoint.Checkpointer(setup.workdir, keep=self.config.train.keep_checkpoints)
    self.writer = None
    self.progress = Progress(setup.total_steps, enabled=False)   # the console's, once training starts
    self.meta = {"data_position": 0, "evals": [], "results": {}}
    self.initial_largest = None

  def still_ours(self) -> None:
    """The lock read now (not at the last heartbeat) before anything is written: a run whose lock another run
    took stops without writing more."""
    if self.setup.lock is not None:
      self.setup.lock.check()

  def close(self) -> None:
    self.checkpointer.close()
    if self.writer is not None:
      self.writer.close()

  # -- restore ---------------------------------------------------------------------------------------------------

  def restore(self) -> dict | None:
    """Resumes from the newest intact checkpoint and records the config; the results of a finished run (then
    nothing more happens), else None. A workdir that cannot go on raises before anything in it changes."""
    s, config, checkpointer = self.setup, self.config, self.checkpointer
    if checkpointer.latest_step() is not None:
      # A checkpoint of another model raises (nothing in the workdir has changed); damaged ones are moved aside.
      self.state, self.meta, damaged = checkpointer.restore_intact(self.state)
      for why in damaged:
        print(f"warning: {why}; moved aside to {checkpointer.directory}/damaged-*", flush=True)
      saved_size = self.meta.get("train_examples")
      if saved_size is not None and saved_size != len(s.dataset.train) and not s.allow_size_change:
        checkpointer.close()
        raise run_identity.WorkdirError(
            f"config.data.train_split={config.data.train_split!r} has {len(s.dataset.train)} examples, but the run "
            f"in --workdir={s.workdir!r} was trained on {saved_size} (the steps, schedule and data order depend on "
            f"it); restore the data, pass --allow_change={run_identity.TRAIN_SIZE} to go on with it, or use a new "
            "workdir")
    # Finished: results.json records this many steps, and the checkpoints agree or are gone.
    finished = run_identity.finished_results(s.root, s.total_steps)
    if finished is None and checkpointer.latest_step() is None:
      done_before = run_identity.finished_results(s.root, 0)
      if done_before is not None:
        checkpointer.close()
        raise run_identity.WorkdirError(
            f"--workdir={s.workdir!r} holds a finished run ({done_before.get('steps', '?')} steps, results.json) "
            f"whose checkpoints are gone: it cannot go on to {s.total_steps} steps, and starting again from step 0 "
            "would overwrite its results; restore its checkpoints, or use a new workdir")
    self.still_ours()
    if jax.process_index() == 0 and (s.changes or not (s.root / "config.json").exists()
                                    or checkpointer.latest_step() is None):
      if s.changes:
        run_identity.record_changes(s.root, s.changes, int(self.state.step))
        print(f"config changes allowed on resume (recorded in config_changes.jsonl): {', '.join(s.changes)}",
              flush=True)
      (s.root / "config.json").write_text(config.to_json_best_effort(indent=1))
    if finished is not None and (int(self.state.step) >= s.total_steps or checkpointer.latest_step() is None):
      checkpointer.close()
      say_finished(s.workdir, s.root, finished, s.total_steps)
      return finished
    if checkpointer.latest_step() is not None:
      print(f"resuming from step {int(self.state.step)} ({checkpointer.directory})", flush=True)
    self._open()
    return None

  def _open(self) -> None:
    """What training and evaluation need from the restored state on: the step, the writer, the evaluator."""
    s, config = self.setup, self.config
    # From here every unreadable image is listed in the workdir (the evaluations and pictures read images too).
    record = "bad_images.jsonl" if jax.process_index() == 0 else f"bad_images.process-{jax.process_index()}.jsonl"
    bad_images.attach(s.dataset, config.data.max_bad_images, s.root / record)
    self.step_fn = make_step(config, s.trainer, self.state, s.mesh)
    self.names = finite_names(self.state)              # of the NaN guard's flags
    self.writer = MetricsWriter(s.workdir, enabled=jax.process_index() == 0, resume_step=int(self.state.step),
                                config=config)
    # compiles the encoder's feature function once for the run; SIGTERM stops an evaluation between batches
    self.evaluator = evals.Evaluator(s.trainer, s.mesh, stop=lambda: bool(self.preemption.requested))
    self.cadence = Cadence.of(config, s.total_steps, s.steps_per_epoch)
    self.results: dict[str, float] = dict(self.meta["results"])
    self.eval_history = list(self.meta["evals"])
    self.first_step = int(self.state.step)
    self.last_saved = self.first_step
    self.initial_largest = self.meta.get("initial_largest_parameter")   # of the run's first state
    if self.first_step == 0:
      self.initial_largest = float(_largest_parameter(self.state.params))
    self.eval_seconds = 0.0
    self.views_drawn = False                           # TensorBoard's views picture, once per segment
    self.start = time.perf_counter()

  def _stopped_before_training(self, during: str) -> _Stop:
    saved = (f"the checkpoint of step {self.first_step} it resumed from is as it was" if self.first_step else
             "nothing was trained, so there is nothing to save")
    return _Stop(f"{self.preemption.requested}: stopped {during}, before the first step of this segment; "
                 f"{saved}; run the same command again to go on")

  def _pictures(self, step: int) -> None:
    """The trackers' pictures (``jaxssl.runs.pictures``) after an evaluation that read the test split: the
    views the recipe makes (once) and a masked method's reconstructions, of the first test images, and the test
    features for TensorBoard's projector. Only after an evaluation, so that they read images just read (a hung
    or damaged file has stopped the evaluation in its own words first). One process only: the reconstruction
    runs the model on the whole state, which a multi-process run holds across processes."""
    s, config = self.setup, self.config
    if jax.process_index() != 0 or jax.process_count() > 1 or s.dataset.test is None:
      return
    reconstruct = tasks.reconstruction(s.trainer.config)
    try:
      if not self.views_drawn or reconstruct is not None:
        images, _ = s.dataset.test.read_substituted(np.arange(min(8, len(s.dataset.test))))
        if not self.views_drawn:
          self.writer.write_image("views", pictures.views_picture(config, images), step)
          self.views_drawn = True
        if reconstruct is not None:
          rows = pictures.reconstructions(s.trainer, self.state, config, images, reconstruct)
          self.writer.write_image("reconstructions", pictures.grid(rows), step)
      self._embedding(step)
    except data.DataError as e:
      print(f"warning: no pictures for TensorBoard at step {step}: {e}", flush=True)

  def _embedding(self, step: int) -> None:
    """``metrics.embedding_points`` test images spread over the split, their features, class names and images."""
    test, points = self.setup.dataset.test, self.config.metrics.embedding_points
    if points <= 0:
      return
    chosen = np.unique(np.linspace(0, len(test) - 1, min(points, len(test))).astype(np.int64))
    images, labels = test.read_substituted(chosen)
    features, _ = self.evaluator.compiled.embed(self.state, data.ArraySource(images, labels))
    names = getattr(test, "class_names", None) or []
    shown = [names[label] if 0 <= label < len(names) else str(label) for label in np.asarray(labels).tolist()]
    self.writer.write_embedding(np.asarray(features), shown, images, step)

  # -- the kNN at initialisation ---------------------------------------------------------------------------------

  def evaluate_at_init(self) -> None:
    """The encoder's kNN before the first step (``eval.knn_at_init``), the baseline the run has to beat."""
    config = self.config
    if self.preemption.requested:
      raise self._stopped_before_training("while the run was being set up")
    if self.first_step == 0:
      self.writer.write_config(config)
    if not (config.eval.knn_at_init and self.first_step == 0):
      return
    try:
      knn = self.evaluator.evaluate(self.state, self.setup.dataset, only=("knn",))["knn_accuracy"]
    except data.Stopped:
      raise self._stopped_before_training("during the kNN at initialisation") from None
    self.results["knn_random_init"] = knn
    self.still_ours()
    self.writer.write(0, {"knn_accuracy": knn}, prefix="eval")
    self._pictures(0)
    start_point = (f"as imported from {config.model.init_from}" if config.model.init_from else
                   "at random initialisation")
    print(f"kNN accuracy of the encoder {start_point}: {100 * knn:.2f}%", flush=True)

  # -- training --------------------------------------------------------------------------------------------------

  def train_seconds(self) -> float:
    """Training time of the whole run so far: earlier segments' (from the checkpoint) plus this one's."""
    return self.results.get("train_seconds", 0.0) + time.perf_counter() - self.start - self.eval_seconds

  def save(self, step: int, position: int) -> None:
    s = self.setup
    self.still_ours()
    self.last_saved = step
    # Training time so far travels with the checkpoint, so a resumed run reports the whole run's; the step
    # history does not (it is in metrics.jsonl, made durable first).
    self.writer.flush()
    so_far = {**self.results, "train_seconds": self.train_seconds()}
    self.checkpointer.save(step, self.state, {
        "data_position": position, "evals": self.eval_history, "results": so_far, "total_steps": s.total_steps,
        "num_classes": s.num_classes, "channels": s.channels, "train_examples": len(s.dataset.train),
        "largest_parameter": float(_largest_parameter(self.state.params)),
        "initial_largest_parameter": self.initial_largest, "config": json.loads(self.config.to_json_best_effort())})

  def _pipeline(self) -> data.Pipeline:
    s = self.setup
    return input_pipeline(self.config, s.dataset, s.trainer, s.channels, s.mesh, int(self.meta["data_position"]))

  def train(self) -> None:
    """Steps to the end, logging, evaluating and saving as ``Cadence`` says; a stop saves at the step boundary
    and raises ``_Stop``. Each step's NaN guard is read one step late (the device runs ahead), and always
    before anything is logged, evaluated or saved."""
    s, config, preemption = self.setup, self.config, self.preemption
    pipeline = self._pipeline()
    self.progress = Progress(s.total_steps, enabled=jax.process_index() == 0, first_step=self.first_step)
    self.start = time.perf_counter()              # this segment's training time counts from here
    timer = None                                  # a speed.StepTimer once the step is compiled
    pending = None                                # the previous step's metrics, checked one step late
    with pipeline:
      for step in range(self.first_step, s.total_steps):
        waited = time.perf_counter()
        try:
          batch = pipeline.next(stop=lambda: bool(preemption.requested), timeout_s=config.data.read_timeout_s)
        except (data.Stopped, data.ReadTimeout) as e:
          self._stop_at_read(step, pipeline.position, e)
        waited = time.perf_counter() - waited
        if timer is None:
          self.step_fn, timer = _compiled_step(self.step_fn, self.state, batch, config.train.batch_size, step)
        timer.data_wait(waited)
        self.state, metrics = self.step_fn(self.state, batch)
        del batch
        if pending is not None:
          _check_finite(*pending)
        pending = (metrics, step + 1, self.names)
        done = step + 1
        if step == self.first_step and not self.cadence.log(done):
          print(f"step {done}: loss {float(metrics['loss']):.4g}; the log follows every {self.cadence.log_every} "
                "steps (every metric in metrics.jsonl)", flush=True)
        preempted = preemption.reached(done)
        if not (self.cadence.any(done) or preempted):
          continue
        _check_finite(*pending)                   # never log, evaluate or save a non-finite state
        pending = None
        self.still_ours()
        if self.cadence.log(done):
          self._log(done, metrics, timer)
        if self.cadence.evaluate(done):
          self._evaluate_during(done, pipeline.position)
          timer.restart(done)
        if preempted and done < s.total_steps:
          self.save(done, pipeline.position)
          raise _Stop(f"{preemption.requested or 'SIGTERM'}: saved a checkpoint at step {done}; run the same "
                      "command again to resume")
        if self.cadence.checkpoint(done):
          self.save(done, pipeline.position)
          timer.restart(done)
    jax.block_until_ready(self.state)
    self.progress.close()
    self.results["train_seconds"] = self.train_seconds()
    self.results["steps"] = s.total_steps
    self.results["train_examples"] = len(s.dataset.train)
    self.results.setdefault("first_loss", float("nan"))
    self.results.setdefault("final_loss", float("nan"))
    self.checkpointer.wait()                      # the final checkpoint is on disk before the evaluation
    if preemption.requested:
      raise _Stop(f"{preemption.requested}: the final checkpoint (step {s.total_steps}) is saved; run the same "
                  "command again for the final evaluation and results.json")

  def _stop_at_read(self, step: int, position: int, error: Exception) -> None:
    """Waiting on a slow or hung read: the state is at a step boundary, so it is saved as it is; a read that
    timed out raises ReadTimeout, a stopped one ``_Stop``."""
    if step != self.last_saved and step > 0 and jax.process_count() == 1:
      self.save(step, position)
    kept = (f"the state at step {step} is saved" if step == self.last_saved and step > 0 else
            "nothing was trained, so there is no checkpoint" if step == 0 else
            f"the checkpoint of step {self.last_saved} is the newest")
    if isinstance(error, data.ReadTimeout):
      raise data.ReadTimeout(f"{error}; {kept}") from None
    raise _Stop(f"{self.preemption.requested}: {kept} (the input pipeline was waiting on a read); run the same "
                "command again to resume")

  def _log(self, done: int, metrics, timer) -> None:
    shown = {k: float(v) for k, v in metrics.items() if not k.startswith("finite")}
    shown.update(timer.interval(done))
    self.progress.log(done, shown)
    self.results.setdefault("first_loss", shown["loss"])
    self.results["final_loss"] = shown["loss"]
    self.writer.write(done, shown)

  def _evaluate_during(self, done: int, position: int) -> None:
    """A periodic evaluation; SIGTERM during it saves the state there and raises ``_Stop``."""
    s = self.setup
    t = time.perf_counter()
    try:
      scores = self.evaluator.evaluate(self.state, s.dataset)
    except data.Stopped:                          # SIGTERM during the evaluation: the state is at a boundary
      if done < s.total_steps:
        self.save(done, position)
      raise _Stop(f"{self.preemption.requested}: stopped during the evaluation at step {done}; saved a "
                  "checkpoint there; run the same command again to resume") from None
    self.eval_seconds += time.perf_counter() - t
    self.still_ours()
    self.eval_history.append({"step": done, "epoch": done / s.steps_per_epoch, **scores})
    self.writer.write(done, scores, prefix="eval")
    self._pictures(done)
    self.progress.close()
    print(f"step {done} (epoch {done / s.steps_per_epoch:.2f}): {evals.summary(scores)}", flush=True)

  # -- the final evaluation and results.json ---------------------------------------------------------------------

  def final_evaluation(self) -> None:
    """The config's evaluators on the final state, the slow ones too (``eval.at_end``)."""
    s, config = self.setup, self.config
    if not config.eval.at_end:
      return
    try:
      scores = self.evaluator.evaluate(self.state, s.dataset, final=True)
    except data.Stopped:
      raise _Stop(f"{self.preemption.requested}: stopped during the final evaluation; the final checkpoint (step "
                  f"{s.total_steps}) is saved; run the same command again for the final evaluation and "
                  "results.json") from None
    self.still_ours()
    self.results.update(scores)
    self.eval_history.append({"step": s.total_steps, "epoch": s.total_steps / s.steps_per_epoch, **scores})
    self.writer.write(s.total_steps, scores, prefix="eval")
    self._pictures(s.total_steps)
    if "knn_accuracy" in scores:
      print(f"kNN accuracy ({config.method.name}, {s.total_steps} steps): {100 * scores['knn_accuracy']:.2f}%",
            flush=True)
    print(f"final: {evals.summary(scores)}", flush=True)

  def write_results(self) -> None:
    """results.json (process 0): the results, every evaluation, the logged history and the config."""
    if jax.process_index() == 0:
      self.still_ours()
      summary = {"results": self.results, "evals": self.eval_history, "history": self.writer.history(),
                 "config": self.config.to_dict()}
      _write_results(self.setup.root / "results.json", json.dumps(summary, indent=1, default=str))


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
