"""The training step of one device: the network and state a config builds, and the step itself.

augment -> the method's loss (which runs the method's model: encoder, heads, decoder) -> gradients averaged over
``AXIS`` -> optax update -> EMA target -> method state -> online probe. It sees this device's share of the
global batch; ``jaxssl.engine.parallel`` maps it over the devices. It never names a method: everything
method-specific comes through ``Method``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxssl import tasks
from jaxssl.data.host_crops import view_key
from jaxssl.engine.cadence import Cadence
from jaxssl.engine.parallel import AXIS, Batch, StepFn
from jaxssl.engine.state import TrainState, ema_update, target_subtree
from jaxssl.methods.base import Method, StepInputs, Variables, init_model, stream
from jaxssl.models import LinearProbe, make_encoder
from jaxssl.ops import augment, optim


class Trainer(NamedTuple):
  """What a run is made of, built once from the config."""
  config: ml_collections.ConfigDict
  method: Method
  model: nn.Module                                   # the method's model around the encoder
  tx: optax.GradientTransformation
  recipes: tuple[augment.ViewRecipe, ...]
  total_steps: int
  probe: nn.Module | None = None                     # the online linear probe (None: off)
  probe_tx: optax.GradientTransformation | None = None
  steps_per_epoch: float = 0.0                       # for settings in epochs (optim.warmup_epochs); 0: unknown


# The stream of per-example keys the method's model draws from (masks, drop path), apart from the views' keys
# (fold_in(example key, view index)).
MODEL_KEYS = 0x4D4F444C


def _dtype(name: str):
  return {"float32": jnp.float32, "bfloat16": jnp.bfloat16}[name]


def build(config: ml_collections.ConfigDict, total_steps: int, axis_name: str | None = AXIS,
          num_classes: int = 0, steps_per_epoch: float = 0.0) -> Trainer:
  """Builds the method, its model (BN synchronised over ``axis_name``), optimizer and view recipes; with
  ``num_classes`` > 0 and ``config.eval.online_probe`` also the online linear probe and its optimizer (unless
  the method says why it cannot feed one: ``Method.no_online_probe``)."""
  method = tasks.get(config)
  model = make_model(config, method, axis_name)
  probe = probe_tx = None
  if num_classes > 0 and config.eval.online_probe and not method.no_online_probe:
    probe = LinearProbe(num_classes)
    # solo-learn's online classifier: SGD with momentum, decayed with the run, no weight decay.
    probe_tx = optax.sgd(optax.cosine_decay_schedule(config.eval.online_probe_lr, total_steps), momentum=0.9)
  return Trainer(config=config, method=method, model=model,
                 tx=optim.make_optimizer(config, total_steps, steps_per_epoch), recipes=tuple(method.recipes(config)),
                 total_steps=total_steps, probe=probe, probe_tx=probe_tx, steps_per_epoch=steps_per_epoch)


def make_model(config: ml_collections.ConfigDict, method: Method, axis_name: str | None,
               gather_axis: str | None = None) -> nn.Module:
  """The method's model around the config's encoder, BatchNorm synchronised over ``axis_name``; with
  ``gather_axis`` the model of an FSDP step, whose ViT blocks gather their own sharded parameters over that
  axis (``jaxssl.models.block_gather``). The two have the same parameters."""
  dtype = _dtype(config.model.compute_dtype)
  encoder = make_encoder(config.model, config.augment.size, axis_name, dtype, gather_axis)
  return method.make_model(config, encoder, axis_name, dtype)


def normalize(trainer: Trainer, images: jax.Array) -> jax.Array:
  """Float images in [0, 1] -> (x - mean) / std with the dataset's per-channel statistics."""
  mean = jnp.asarray(trainer.config.data.mean, jnp.float32)
  std = jnp.asarray(trainer.config.data.std, jnp.float32)
  return (images - mean) / std


def init_state(trainer: Trainer, key: jax.Array, channels: int) -> TrainState:
  """Initial state for images with ``channels`` channels at the recipe's view size, made by one jitted program:
  op by op, the initialisers of even a small model are a few hundred tiny compilations (10 s of a short run's
  start-up on a CPU, measured with cProfile for the tiny BYOL of tests/test_multihost.py)."""
  return jax.jit(lambda k: _make_state(trainer, k, channels))(key)


def _make_state(trainer: Trainer, key: jax.Array, channels: int) -> TrainState:
  init_key, state_key, rng = jax.random.split(key, 3)
  size = trainer.recipes[0].size
  method, model = trainer.method, trainer.model
  variables = init_model(model, init_key, jnp.zeros((2, size, size, channels)))
  params, batch_stats = variables["params"], variables.get("batch_stats", {})   # a ViT has none
  probe_params = probe_opt_state = None
  if trainer.probe is not None:
    features = jax.eval_shape(lambda: model.apply(variables, jnp.zeros((1, size, size, channels)),
                                                  method=model.embed))
    probe_params = trainer.probe.init(jax.random.fold_in(init_key, 1), jnp.zeros(features.shape))
    probe_opt_state = trainer.probe_tx.init(probe_params)
  fresh = TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      batch_stats=batch_stats,
      opt_state=None,
      ema_params=None,
      ema_batch_stats=None,
      method_state=(method.init_state(state_key, trainer.config) if method.fill_state is None else
                    method.fill_state(method.init_state(state_key, trainer.config), params)),
      rng=jax.random.key_data(rng),
      probe_params=probe_params,
      probe_opt_state=probe_opt_state,
  )
  return with_variables(trainer, fresh, params, batch_stats)


def with_variables(trainer: Trainer, state: TrainState, params: Any, batch_stats: Any) -> TrainState:
  """``state`` with these online variables, and the optimizer state and EMA target (where the method keeps
  one) started afresh from them: a new run's state, or one warm-started from a pretrained encoder."""
  method = trainer.method
  # The target starts as a copy: aliased leaves in a donated state would be freed twice.
  copy = lambda tree: jax.tree.map(jnp.copy, target_subtree(tree, method.ema_parts))
  return state.replace(params=params, batch_stats=batch_stats, opt_state=trainer.tx.init(params),
                       ema_params=copy(params) if method.uses_ema else None,
                       ema_batch_stats=copy(batch_stats) if method.uses_ema else None)


class Gradients(NamedTuple):
  """What the gradient half of a step gives the update half (``apply_gradients``): the gradients, reduced over
  the devices (their mean; each device's shard of it under FSDP), and what the step computed besides them."""
  grads: Any
  batch_stats: Any
  method_state: Any
  probe_params: Any
  probe_opt_state: Any
  metrics: dict[str, jax.Array]          # averaged over the devices


def make_gradient_step(trainer: Trainer, axis_name: str | None = AXIS,
                       reduce_gradients=None) -> Callable[[TrainState, Batch], Gradients]:
  """The per-device half of a step that needs the batch and collectives: augment -> the method's loss (which
  runs its model) -> gradients reduced by ``reduce_gradients`` (default: their mean over ``axis_name``),
  new BN statistics, the method state's update and the online probe's step.

  Each example's key is fold_in(fold_in(rng, step), global index), so the views, masks and any other randomness
  do not depend on how the global batch is split over devices or hosts. With ``train.grad_accum_steps`` = k >
  1 the device's share runs as k micro-batches in turn (``lax.scan``: one micro-batch's activations live at a
  time) whose gradients are averaged before the one reduction over the devices; each example keeps its global
  index, so for a loss that is a mean of per-example terms the step equals the unaccumulated one. The BN
  statistics, the method state and the online probe then advance once per micro-batch.
  """
  config = trainer.config
  accumulate = max(1, int(config.train.grad_accum_steps))
  if reduce_gradients is None:
    reduce_gradients = (lambda g: g) if axis_name is None else (lambda g: jax.lax.pmean(g, axis_name))
  micro_step = _micro_batch_step(trainer, axis_name)

  def gradient_step(state: TrainState, batch: Batch) -> Gradients:
    local_batch = batch["label"].shape[0]
    offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * local_batch
    if accumulate == 1:
      g = micro_step(state, batch, offset)
    else:
      size = local_batch // accumulate
      micro = jax.tree.map(lambda x: x.reshape((accumulate, size) + x.shape[1:]), batch)

      # The carry holds only what a micro-batch changes; the parameters and the rest of the state are the
      # scan's constants, not copied through the loop.
      def body(carry, inputs):
        grads, (batch_stats, method_state, probe_params, probe_opt_state) = carry
        index, batch = inputs
        current = state.replace(batch_stats=batch_stats, method_state=method_state, probe_params=probe_params,
                                probe_opt_state=probe_opt_state)
        g = micro_step(current, batch, offset + index * size)
        changed = (g.batch_stats, g.method_state, g.probe_params, g.probe_opt_state)
        return (jax.tree.map(jnp.add, grads, g.grads), changed), g.metrics

      zeros = jax.tree.map(jnp.zeros_like, state.params)
      first = (state.batch_stats, state.method_state, state.probe_params, state.probe_opt_state)
      (grads, last), metrics = jax.lax.scan(body, (zeros, first), (jnp.arange(accumulate), micro))
      g = Gradients(jax.tree.map(lambda x: x / accumulate, grads), *last,
                    metrics=jax.tree.map(lambda m: m.mean(0), metrics))
    metrics = g.metrics if axis_name is None else jax.lax.pmean(g.metrics, axis_name)
    return g._replace(grads=reduce_gradients(g.grads), metrics=metrics)

  return gradient_step


def loss_function(trainer: Trainer, state: TrainState, batch: Batch, offset: jax.Array,
                  axis_name: str | None) -> Callable[[Any], tuple[jax.Array, Any]]:
  """params -> (the method's loss on this device's ``batch``, its LossOutput): the views of each example drawn
  from its global index (``offset`` + position), the method's model run on them. What the step
  differentiates (also what benchmarks/speed/memory_scaling.py reads the residuals of)."""
  method = trainer.method
  labels = batch["label"]
  step_key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
  example_keys = jax.vmap(jax.random.fold_in, (None, 0))(step_key, offset + jnp.arange(labels.shape[0]))
  if "image" in batch:
    views = augment.views(example_keys, batch["image"], trainer.recipes)
  else:                                       # cropped on the host from the full images (data.crop_on)
    crops = [batch[view_key(i)] for i in range(len(trainer.recipes))]
    views = augment.views_of_crops(example_keys, crops, trainer.recipes)
  inputs = StepInputs(views=[normalize(trainer, v) for v in views],
                      keys=stream(example_keys, MODEL_KEYS),
                      labels=labels, step=state.step, method_state=state.method_state, axis_name=axis_name)
  target = Variables(state.ema_params, state.ema_batch_stats) if method.uses_ema else None

  def loss_fn(params):
    out = method.loss(trainer.model, Variables(params, state.batch_stats), target, inputs)
    return out.loss, out
  return loss_fn


def _micro_batch_step(trainer: Trainer, axis_name: str | None):
  """(state, batch, global index of its first example) -> this device's unreduced Gradients of the batch."""
  method, config = trainer.method, trainer.config
  logs_after = Cadence(trainer.total_steps, max(1, config.train.log_every)).log

  def micro_step(state: TrainState, batch: Batch, offset: jax.Array) -> Gradients:
    labels = batch["label"]
    loss_fn = loss_function(trainer, state, batch, offset, axis_name)
    grads, out = jax.grad(loss_fn, has_aux=True)(state.params)
    metrics = dict(out.metrics)
    if out.representations:
      # The SVD is costly and read only when the loop logs: computed then only.
      metrics.update(representation_health(out.representations[0], axis_name, when=logs_after(state.step + 1)))
    method_state = method.update_state(state.method_state, out.state_inputs, state.step, axis_name)
    probe_params, probe_opt_state = state.probe_params, state.probe_opt_state
    if trainer.probe is not None:
      probe_params, probe_opt_state, probe_metrics = _online_probe_update(
          trainer, state, out.representations[:2], labels, axis_name)
      metrics.update(probe_metrics)
    return Gradients(grads=grads, batch_stats=out.batch_stats, method_state=method_state,
                     probe_params=probe_params, probe_opt_state=probe_opt_state, metrics=metrics)

  return micro_step


def apply_gradients(trainer: Trainer, state: TrainState, g: Gradients) -> tuple[TrainState, dict[str, jax.Array]]:
  """The half of a step with no collectives: optax update -> EMA target -> the new state, and the NaN guard's
  flags (``metrics["finite_leaves"]``: one per name of ``finite_names(state)``). Runs per device on a
  replicated state, or on the global arrays of a sharded one (FSDP), where XLA partitions the norms of
  gradient clipping and LARS like any other reduction."""
  method, config = trainer.method, trainer.config
  updates, opt_state = trainer.tx.update(g.grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = dict(g.metrics)
  metrics["lr"] = optim.learning_rate_schedule(config, trainer.total_steps, trainer.steps_per_epoch)(state.step)
  if config.optim.weight_decay_end >= 0:
    metrics["weight_decay"] = optim.weight_decay_schedule(config, trainer.total_steps)(state.step)
  ema_params, ema_batch_stats = state.ema_params, state.ema_batch_stats
  if method.uses_ema:
    tau = method.ema(state.step, trainer.total_steps)
    ema_params = ema_update(ema_params, params, tau, method.ema_parts)
    ema_batch_stats = ema_update(ema_batch_stats, g.batch_stats, tau, method.ema_parts)
    metrics["tau"] = tau
  new_state = state.replace(step=state.step + 1, params=params, batch_stats=g.batch_stats, opt_state=opt_state,
                            ema_params=ema_params, ema_batch_stats=ema_batch_stats, method_state=g.method_state,
                            probe_params=g.probe_params, probe_opt_state=g.probe_opt_state)
  # The loop's NaN/Inf guard reads these: one flag per floating-point leaf of the loss, the gradients and the
  # whole updated state (a finite loss and gradient can still give non-finite weights, e.g. through the
  # optimizer), so a non-finite state is never logged, evaluated or saved.
  checked = _checked_leaves(metrics["loss"], g.grads, new_state)
  flags = jnp.stack([jnp.all(jnp.isfinite(leaf)) for _, leaf in checked])
  metrics["finite"] = jnp.all(flags).astype(jnp.float32)
  metrics["finite_leaves"] = flags.astype(jnp.float32)
  return new_state, metrics


def make_per_device_step(trainer: Trainer, axis_name: str | None = AXIS) -> StepFn:
  """The per-device training step (state, batch) -> (state, metrics) on a replicated state: the gradient half
  (``make_gradient_step``: augment, loss, gradients averaged over ``axis_name``, method state, online probe)
  then the update half (``apply_gradients``: optax, EMA, NaN guard)."""
  gradient_step = make_gradient_step(trainer, axis_name)

  def step(state: TrainState, batch: Batch):
    return apply_gradients(trainer, state, gradient_step(state, batch))

  return step


def _checked_leaves(loss: Any, grads: Any, state: TrainState) -> list[tuple[str, Any]]:
  """The floating-point leaves the NaN/Inf guard checks, in order, each with its path
  ("state/params/encoder/conv1/kernel")."""
  out = []
  for name, tree in (("loss", loss), ("gradients", grads), ("state", state)):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      if jnp.issubdtype(leaf.dtype, jnp.inexact):
        out.append(("/".join([name, jax.tree_util.keystr(path, simple=True, separator="/")]).rstrip("/"), leaf))
  return out


def finite_names(state: TrainState) -> list[str]:
  """The name of each flag in the step's ``metrics["finite_leaves"]``, from a state of the run (concrete or
  abstract): the gradients have the structure and dtypes of ``state.params``."""
  return [name for name, _ in _checked_leaves(jnp.zeros((), jnp.float32), state.params, state)]


def representation_health(representations: jax.Array, axis_name: str | None,
                          when: jax.Array | bool = True) -> dict[str, jax.Array]:
  """Collapse indicators of the encoder's features [B, D] over the global batch.

  rep_std: std over the batch of the L2-normalised features, averaged over dimensions and times sqrt(D): about
    1 when spread out, 0 when collapsed (SimSiam, Chen and He 2021).
  rep_rank: effective rank exp(H(s / sum s)) of the centred features' singular values s (Roy and Vetterli 2007),
    between 1 (collapsed to a line) and min(B, D).
  ``when`` False (a traced bool is fine) skips the computation and gives zeros.
  """
  h = jax.lax.stop_gradient(representations).astype(jnp.float32)
  # The gather stays outside the cond: a collective inside a conditional deadlocked XLA:CPU's 8 simulated
  # devices now and then (a rendezvous that one device's thread never reached).
  if axis_name is not None:
    h = jax.lax.all_gather(h, axis_name, tiled=True)

  def health(h):
    unit = h / jnp.maximum(jnp.linalg.norm(h, axis=-1, keepdims=True), 1e-12)
    std = jnp.std(unit, axis=0).mean() * jnp.sqrt(h.shape[-1])
    singular = jnp.linalg.svd(h - h.mean(axis=0), compute_uv=False)
    p = singular / jnp.maximum(singular.sum(), 1e-12)
    rank = jnp.exp(-jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.maximum(p, 1e-30)), 0.0)))
    return {"rep_std": std, "rep_rank": rank}

  return jax.lax.cond(when, health, lambda h: {"rep_std": jnp.zeros(()), "rep_rank": jnp.zeros(())}, h)


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
