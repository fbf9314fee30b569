"""The one trainer: network, state, the per-device step, its data-parallel wrappers and the training loop.

The per-device step sees this device's share of the global batch and reaches the rest of it only through
collectives over the axis ``AXIS``. ``shard_step`` runs it under ``jax.shard_map`` over a 1-D mesh of all
devices (the default); ``pmap_step`` runs the same function under ``jax.pmap``. The trainer never names a method.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import flax.linen as nn
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxssl import augment, methods, optim
from jaxssl.methods.base import Method, Outputs
from jaxssl.data.host_crops import view_key
from jaxssl.metrics import MetricsWriter
from jaxssl.models import SSLNetwork, make_encoder
from jaxssl.state import TrainState, ema_update, target_subtree
from jaxssl.workdir import resolve

AXIS = "batch"
# {"image": uint8 [B, H, W, C], "label": int32 [B] (-1 when unlabeled)}, or with the crops taken on the host
# {"view0": uint8 [B, S0, S0, C], "view1": ..., "label": ...}, one entry per view recipe.
Batch = dict[str, jax.Array]
StepFn = Callable[[TrainState, Batch], tuple[TrainState, dict[str, jax.Array]]]


class Trainer(NamedTuple):
  """What a run is made of, built once from the config."""
  config: ml_collections.ConfigDict
  method: Method
  network: SSLNetwork
  tx: optax.GradientTransformation
  recipes: tuple[augment.ViewRecipe, ...]
  total_steps: int
  probe: nn.Module | None = None                     # the online linear probe (None: off)
  probe_tx: optax.GradientTransformation | None = None
  steps_per_epoch: float = 0.0                       # for settings in epochs (optim.warmup_epochs); 0: unknown


def _dtype(name: str):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def build(config: ml_collections.ConfigDict, total_steps: int, axis_name: str | None = AXIS,
          num_classes: int = 0, steps_per_epoch: float = 0.0) -> Trainer:
  """Builds the method, network (BN synchronised over ``axis_name``), optimizer and view recipes; with
  ``num_classes`` > 0 and ``config.eval.online_probe`` also the online linear probe and its optimizer."""
  method = methods.get(config)
  dtype = _dtype(config.model.compute_dtype)
  encoder = make_encoder(config.model, config.augment.size, axis_name, dtype)
  heads = method.make_heads(config, axis_name, dtype)
  network = SSLNetwork(encoder=encoder, projector=heads.projector, predictor=heads.predictor,
                       prototypes=heads.prototypes)
  probe = probe_tx = None
  if num_classes > 0 and config.eval.online_probe:
    from jaxssl.evaluate import LinearProbe

    probe = LinearProbe(num_classes)
    # solo-learn's online classifier: SGD with momentum, decayed with the run, no weight decay.
    probe_tx = optax.sgd(optax.cosine_decay_schedule(config.eval.online_probe_lr, total_steps), momentum=0.9)
  return Trainer(config=config, method=method, network=network,
                 tx=optim.make_optimizer(config, total_steps, steps_per_epoch), recipes=tuple(method.recipes(config)),
                 total_steps=total_steps, probe=probe, probe_tx=probe_tx, steps_per_epoch=steps_per_epoch)


def normalize(trainer: Trainer, images: jax.Array) -> jax.Array:
  """Float images in [0, 1] -> (x - mean) / std with the dataset's per-channel statistics."""
  mean = jnp.asarray(trainer.config.data.mean, jnp.float32)
  std = jnp.asarray(trainer.config.data.std, jnp.float32)
  return (images - mean) / std


def init_state(trainer: Trainer, key: jax.Array, channels: int) -> TrainState:
  """Initial state for images with ``channels`` channels at the recipe's view size."""
  init_key, state_key, rng = jax.random.split(key, 3)
  size = trainer.recipes[0].size
  variables = trainer.network.init(init_key, jnp.zeros((2, size, size, channels)), train=False)
  params, batch_stats = variables["params"], variables.get("batch_stats", {})   # a ViT has none
  uses_ema = trainer.method.uses_ema
  probe_params = probe_opt_state = None
  if trainer.probe is not None:
    features = jax.eval_shape(lambda: trainer.network.apply(variables, jnp.zeros((1, size, size, channels)),
                                                            method=trainer.network.embed))
    probe_params = trainer.probe.init(jax.random.fold_in(init_key, 1), jnp.zeros(features.shape))
    probe_opt_state = trainer.probe_tx.init(probe_params)
  # The target starts as a copy: aliased leaves in a donated state would be freed twice.
  copy = lambda tree: jax.tree.map(jnp.copy, target_subtree(tree))
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=batch_stats,
      opt_state=trainer.tx.init(params),
      ema_params=copy(params) if uses_ema else None,
      ema_batch_stats=copy(batch_stats) if uses_ema else None,
      method_state=trainer.method.init_state(state_key, trainer.config),
      rng=jax.random.key_data(rng),
      probe_params=probe_params,
      probe_opt_state=probe_opt_state,
  )


def _forward_views(network: SSLNetwork, variables, views, with_predictor: bool):
  """Runs the network on each view in turn (BN statistics per view, as the reference implementations do)."""

  def apply_all(module, views):
    outs = [module(v, train=True, with_predictor=with_predictor) for v in views]
    return [o[0] for o in outs], [o[1] for o in outs], [o[2] for o in outs]

  (h, z, p), updates = network.apply(variables, views, mutable=["batch_stats"], method=apply_all)
  outputs = Outputs(representations=h, projections=z, predictions=p if p[0] is not None else None)
  return outputs, updates.get("batch_stats", {})


def make_per_device_step(trainer: Trainer, axis_name: str | None = AXIS) -> StepFn:
  """The per-device training step (state, batch) -> (state, metrics).

  augment -> encoder -> heads -> method loss -> gradient averaged over ``axis_name`` -> optax update -> EMA ->
  method state update. Each example's augmentation key is fold_in(fold_in(rng, step), global index), so the
  views do not depend on how the global batch is split over devices or hosts.
  """
  method, network, config = trainer.method, trainer.network, trainer.config

  def step(state: TrainState, batch: Batch):
    labels = batch["label"]
    local_batch = labels.shape[0]
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_batch
    step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    example_keys = jax.vmap(jax.random.fold_in, (None, 0))(step_key, offset + jnp.arange(local_batch))
    if "image" in batch:
      views = augment.views(example_keys, batch["image"], trainer.recipes)
    else:                                       # cropped on the host from the full images (data.crop_on)
      crops = [batch[view_key(i)] for i in range(len(trainer.recipes))]
      views = augment.views_of_crops(example_keys, crops, trainer.recipes)
    views = [normalize(trainer, v) for v in views]

    target = None
    if method.uses_ema:
      target_views = views if method.target_views is None else [views[i] for i in method.target_views]
      target, _ = _forward_views(network, {"params": state.ema_params, "batch_stats": state.ema_batch_stats},
                                 target_views, with_predictor=False)
      target = jax.tree.map(jax.lax.stop_gradient, target)

    online_views = views if method.online_views is None else [views[i] for i in method.online_views]

    def loss_fn(params):
      online, batch_stats = _forward_views(
          network, {"params": params, "batch_stats": state.batch_stats}, online_views, with_predictor=True)
      online = online._replace(params=params)
      loss, metrics = method.loss(online, target, state.method_state, labels, state.step, axis_name)
      return loss, (metrics, batch_stats, online)

    grads, (metrics, batch_stats, online) = jax.grad(loss_fn, has_aux=True)(state.params)
    if axis_name is not None:
      grads = jax.lax.pmean(grads, axis_name)
    updates, opt_state = trainer.tx.update(grads, state.opt_state, state.params)
    if method.update_mask is not None:
      updates = jax.tree.map(lambda u, m: u * m, updates, method.update_mask(state.params, state.step))
    params = optax.apply_updates(state.params, updates)

    metrics = dict(metrics)
    metrics.update(representation_health(online.representations[0], axis_name))
    metrics["lr"] = optim.learning_rate_schedule(config, trainer.total_steps, trainer.steps_per_epoch)(state.step)
    ema_params, ema_batch_stats = state.ema_params, state.ema_batch_stats
    if method.uses_ema:
      tau = method.ema(state.step, trainer.total_steps)
      ema_params = ema_update(ema_params, params, tau)
      ema_batch_stats = ema_update(ema_batch_stats, batch_stats, tau)
      metrics["tau"] = tau
    method_state = method.update_state(state.method_state, online, target, state.step, axis_name)
    probe_params, probe_opt_state = state.probe_params, state.probe_opt_state
    if trainer.probe is not None:
      probe_params, probe_opt_state, probe_metrics = _online_probe_update(
          trainer, state, online.representations[:2], labels, axis_name)
      metrics.update(probe_metrics)
    if axis_name is not None:
      metrics = jax.lax.pmean(metrics, axis_name)
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state,
                              ema_params=ema_params, ema_batch_stats=ema_batch_stats, method_state=method_state,
                              probe_params=probe_params, probe_opt_state=probe_opt_state)
    # The loop's NaN/Inf guard reads these: one flag per floating-point leaf of the loss, the gradients and the
    # whole updated state (a finite loss and gradient can still give non-finite weights, e.g. through the
    # optimizer), so a non-finite state is never logged, evaluated or saved.
    flags, step.finite_names[:] = finite_leaves([("loss", metrics["loss"]), ("gradients", grads),
                                                 ("state", new_state)])
    metrics["finite"] = jnp.all(flags).astype(jnp.float32)
    metrics["finite_leaves"] = flags.astype(jnp.float32)
    return new_state, metrics

  step.finite_names = []            # filled when the step is traced: the name of each flag in finite_leaves
  return step


def finite_leaves(parts: Sequence[tuple[str, Any]]) -> tuple[jax.Array, list[str]]:
  """A bool vector with one entry per floating-point leaf of the named pytrees, in order (True where every
  value is finite), and the leaves' paths ("state/params/encoder/conv1/kernel")."""
  flags, names = [], []
  for name, tree in parts:
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      if jnp.issubdtype(jnp.asarray(leaf).dtype, jnp.inexact):
        flags.append(jnp.all(jnp.isfinite(leaf)))
        names.append("/".join([name, jax.tree_util.keystr(path, simple=True, separator="/")]).rstrip("/"))
  return jnp.stack(flags), names


def representation_health(representations: jax.Array, axis_name: str | None) -> dict[str, jax.Array]:
  """Collapse indicators of the encoder's features [B, D] over the global batch.

  rep_std: std over the batch of the L2-normalised features, averaged over dimensions and times sqrt(D): about
    1 when spread out, 0 when collapsed (SimSiam, Chen and He 2021).
  rep_rank: effective rank exp(H(s / sum s)) of the centred features' singular values s (Roy and Vetterli 2007),
    between 1 (collapsed to a line) and min(B, D).
  """
  h = jax.lax.stop_gradient(representations).astype(jnp.float32)
  if axis_name is not None:
    h = jax.lax.all_gather(h, axis_name, tiled=True)
  unit = h / jnp.maximum(jnp.linalg.norm(h, axis=-1, keepdims=True), 1e-12)
  std = jnp.std(unit, axis=0).mean() * jnp.sqrt(h.shape[-1])
  singular = jnp.linalg.svd(h - h.mean(axis=0), compute_uv=False)
  p = singular / jnp.maximum(singular.sum(), 1e-12)
  rank = jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, 1e-30)), 0.0)))
  return {"rep_std": std, "rep_rank": rank}


def _online_probe_update(trainer: Trainer, state: TrainState, representations, labels, axis_name):
  """One SGD step of the online linear probe on stop-gradient representations of the (global) views.

  Unlabeled examples (label -1) are masked out. The loss is the mean over the labeled examples of the global
  batch: each device scales its sum by the global count, so the pmean of the gradients is the global gradient.
  """
  features = jnp.concatenate([jax.lax.stop_gradient(h) for h in representations]).astype(jnp.float32)
  targets = jnp.concatenate([labels] * len(representations))
  mask = (targets >= 0).astype(jnp.float32)
  count = mask.sum() if axis_name is None else jax.lax.psum(mask.sum(), axis_name)
  devices = 1 if axis_name is None else jax.lax.psum(1, axis_name)

  def loss_fn(params):
    logits = trainer.probe.apply(params, features)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(targets, 0))
    return (ce * mask).sum() * devices / jnp.maximum(count, 1.0), logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.probe_params)
  if axis_name is not None:
    grads = jax.lax.pmean(grads, axis_name)
  updates, opt_state = trainer.probe_tx.update(grads, state.probe_opt_state, state.probe_params)
  correct = ((jnp.argmax(logits, -1) == targets) * mask).sum() * devices / jnp.maximum(count, 1.0)
  # After the trainer's pmean over devices these are the global-batch loss and accuracy.
  return optax.apply_updates(state.probe_params, updates), opt_state, {"probe_loss": loss, "probe_acc": correct}


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all global devices (every process's), axis ``AXIS``."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (AXIS,))


def shard_step(step: StepFn, mesh: Mesh) -> StepFn:
  """The per-device step, data-parallel under jax.shard_map and jitted; the state buffer is donated.

  ``check_vma=False`` gives pmap's semantics: the state is replicated by construction (gradients, BN statistics
  and metrics are averaged over the axis), and all_gather outputs are used as replicated values.
  """
  mapped = jax.shard_map(step, mesh=mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()), check_vma=False)
  return jax.jit(mapped, donate_argnums=0)


def pmap_step(step: StepFn) -> StepFn:
  """The same per-device step under jax.pmap (state with a leading device axis, batch reshaped [D, B/D, ...])."""
  return jax.pmap(step, axis_name=AXIS, donate_argnums=0)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Puts a pytree on every device of the mesh, replicated."""
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> Batch:
  """This process's share of the global batch -> global arrays sharded over the mesh's batch axis."""
  sharding = NamedSharding(mesh, P(AXIS))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


# ----------------------------------------------------------------------------------------------------------------
# The loop.


def total_steps_for(config: ml_collections.ConfigDict, num_train: int) -> int:
  """``train.num_steps`` if positive, else ``train.num_epochs`` (may be fractional) of the train split."""
  if config.train.num_steps > 0:
    return int(config.train.num_steps)
  return max(1, int(round(config.train.num_epochs * num_train / config.train.batch_size)))


class TrainingError(RuntimeError):
  """The run cannot go on (a non-finite loss, gradient or updated state); the message names the step."""


class _Preemption:
  """Whether to save and stop at a step boundary because of SIGTERM (preemption).

  One process: a SIGTERM handler sets a flag. Several processes: JAX's preemption service (which catches the
  scheduler's notice) agrees on one step for all of them, ``multihost_utils.reached_preemption_sync_point``,
  so every process saves the same step; it must be asked at every step.
  """

  def __init__(self):
    self._flag = False
    self._previous = None
    self._multi = jax.process_count() > 1

  def __enter__(self):
    import signal
    import threading

    if not self._multi and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    self._flag = True

  def reached(self, step: int) -> bool:
    if self._multi:
      from jax.experimental import multihost_utils
      return multihost_utils.reached_preemption_sync_point(step)
    return self._flag

  def __exit__(self, *exc):
    import signal

    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _check_finite(metrics, step: int, names: list[str]) -> None:
  if float(metrics["finite"]) != 1.0:
    flags = np.asarray(metrics["finite_leaves"])
    first = names[int(np.argmin(flags))] if len(names) == len(flags) else "?"
    raise TrainingError(f"step {step}: not finite: {first} (loss={float(metrics['loss'])}); nothing from this "
                        "step on is saved, and the workdir resumes from its last checkpoint; lower "
                        "config.optim.base_lr or check the data and the config")


def run(config: ml_collections.ConfigDict, workdir: str, dataset=None) -> dict[str, float]:
  """Validates the config, trains (resuming from the workdir's latest checkpoint), evaluates and writes
  ``results.json``; returns the results.

  ``dataset`` (a ``jaxssl.data.Dataset``, e.g. of in-memory ArraySources) replaces the config's data source.
  Checkpoints go to ``workdir/checkpoints`` every ``train.checkpoint_every`` steps, at the end, and on SIGTERM
  (then the run returns early with ``results["preempted"] = True``).
  """
  from jaxssl import checkpoint, data, evaluate, validate
  from jaxssl.progress import Progress

  validate.validate(config, num_devices=jax.device_count())
  dataset = dataset or data.load(config.data)   # raises DataError before the workdir is touched
  if methods.get(config).needs_labels and not dataset.train.labeled:
    raise data.DataError(f"config.method.name={config.method.name!r} needs labels, but "
                         f"config.data.train_split={config.data.train_split!r} has none")
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
  channels = dataset.train.image_shape[-1]
  state = replicate(init_state(trainer, jax.random.key(config.seed), channels), mesh)

  root = resolve(workdir)
  root.mkdir(parents=True, exist_ok=True)
  checkpointer = checkpoint.Checkpointer(workdir, keep=config.train.keep_checkpoints)
  meta = {"data_position": 0, "evals": [], "results": {}}
  if checkpointer.latest_step() is not None:
    state, meta = checkpointer.restore(state)     # CheckpointError: nothing in the workdir has changed
    print(f"resuming from step {int(state.step)} ({checkpointer.directory})", flush=True)
  if jax.process_index() == 0:
    (root / "config.json").write_text(config.to_json_best_effort(indent=1))
  per_device_step = make_per_device_step(trainer)
  step_fn = shard_step(per_device_step, mesh)
  writer = MetricsWriter(workdir, enabled=jax.process_index() == 0, resume_step=int(state.step))

  results: dict[str, float] = dict(meta["results"])
  evals = list(meta["evals"])
  first_step = int(state.step)
  if config.eval.knn_at_init and first_step == 0:
    results["knn_random_init"] = evaluate.knn_accuracy_of(trainer, state, dataset, mesh)
    writer.write(0, {"knn_accuracy": results["knn_random_init"]}, prefix="eval")
    print(f"kNN accuracy of the encoder at random initialisation: {100 * results['knn_random_init']:.2f}%",
          flush=True)

  def train_seconds() -> float:
    """Training time of the whole run so far: earlier segments' (from the checkpoint) plus this one's."""
    return results.get("train_seconds", 0.0) + time.perf_counter() - start - eval_seconds

  def save(step: int, position: int) -> None:
    # Training time so far travels with the checkpoint, so a resumed run reports the whole run's; the step
    # history does not (it is in metrics.jsonl, made durable first).
    writer.flush()
    so_far = {**results, "train_seconds": train_seconds()}
    checkpointer.save(step, state, {"data_position": position, "evals": evals, "results": so_far,
                                    "total_steps": total_steps, "num_classes": num_classes, "channels": channels})

  eval_every = int(round(config.eval.every_epochs * steps_per_epoch)) if config.eval.every_epochs > 0 else 0
  crops = None
  if data.crops_on_host(config.data):
    crops = data.host_cropper(config, trainer.recipes, channels)
    print(f"data: random resized crops on the host from the full images, {crops.workers} worker thread(s) "
          f"(config.data.crop_on={config.data.crop_on!r})", flush=True)
  pipeline = data.Pipeline(dataset.train, config.train.batch_size, seed=config.seed,
                           position=int(meta["data_position"]), process_index=jax.process_index(),
                           process_count=jax.process_count(), prefetch=config.data.prefetch,
                           transform=lambda b: shard_batch(b, mesh), crops=crops)
  progress = Progress(total_steps, config.train.batch_size, every=config.train.log_every, start=first_step)
  start = time.perf_counter()
  eval_seconds = 0.0
  pending = None                                  # the previous step's metrics, checked one step late
  # One exit path: however the loop ends (done, preempted, a non-finite loss), the checkpoint in flight is
  # finished, metrics are flushed and the data workers stop.
  try:
    with pipeline, _Preemption() as preemption:
      for step in range(first_step, total_steps):
        state, metrics = step_fn(state, next(pipeline))
        if pending is not None:
          _check_finite(*pending)
        pending = (metrics, step + 1, per_device_step.finite_names)
        done = step + 1
        preempted = preemption.reached(done)
        boundary = (progress.should_log(done) or (eval_every and done % eval_every == 0)
                    or (config.train.checkpoint_every and done % config.train.checkpoint_every == 0)
                    or preempted or done == total_steps)
        if not boundary:
          continue
        _check_finite(*pending)                   # never log, evaluate or save a non-finite state
        pending = None
        if progress.should_log(done):
          shown = {k: float(v) for k, v in metrics.items() if not k.startswith("finite")}
          shown["images_per_s"] = progress.log(done, shown)
          results.setdefault("first_loss", shown["loss"])
          results["final_loss"] = shown["loss"]
          writer.write(done, shown)
        # A periodic evaluation less than half an interval before the end is left to the final one.
        final_soon = config.eval.at_end and total_steps - done < eval_every / 2
        if eval_every and done % eval_every == 0 and done < total_steps and not final_soon:
          t = time.perf_counter()
          scores = evaluate.evaluate_state(trainer, state, dataset, mesh)
          eval_seconds += time.perf_counter() - t
          evals.append({"step": done, "epoch": done / steps_per_epoch, **scores})
          writer.write(done, scores, prefix="eval")
          progress.close()
          print(f"step {done} (epoch {done / steps_per_epoch:.2f}): {evaluate.summary(scores)}", flush=True)
        if preempted and done < total_steps:
          save(done, pipeline.position)
          progress.close()
          print(f"SIGTERM: saved a checkpoint at step {done}; run the same command again to resume", flush=True)
          results["preempted"] = True
          return results
        if (config.train.checkpoint_every and done % config.train.checkpoint_every == 0) or done == total_steps:
          save(done, pipeline.position)
    jax.block_until_ready(state)
    progress.close()
    results["train_seconds"] = train_seconds()
    results["steps"] = total_steps
    results.setdefault("first_loss", float("nan"))
    results.setdefault("final_loss", float("nan"))

    if config.eval.at_end:
      scores = evaluate.evaluate_state(trainer, state, dataset, mesh, linear=config.eval.linear_probe)
      results.update(scores)
      evals.append({"step": total_steps, "epoch": total_steps / steps_per_epoch, **scores})
      writer.write(total_steps, scores, prefix="eval")
      print(f"kNN accuracy ({config.method.name}, {total_steps} steps): {100 * scores['knn_accuracy']:.2f}%",
            flush=True)
      print(f"final: {evaluate.summary(scores)}", flush=True)
  finally:
    checkpointer.close()
    writer.close()
  if jax.process_index() == 0:
    summary = {"results": results, "evals": evals, "history": writer.history(), "config": config.to_dict()}
    (root / "results.json").write_text(json.dumps(summary, indent=1, default=str))
  return results
