"""The training step of one device: the network and state a config builds, and the step itself.

augment -> encoder -> heads -> the method's loss -> gradients averaged over ``AXIS`` -> optax update -> EMA
target -> method state -> online probe. It sees this device's share of the global batch; ``jaxssl.parallel``
maps it over the devices. It never names a method: everything method-specific comes through ``Method``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxssl import augment, methods, optim
from jaxssl.cadence import Cadence
from jaxssl.data.host_crops import view_key
from jaxssl.methods.base import Method, Outputs
from jaxssl.models import LinearProbe, SSLNetwork, make_encoder
from jaxssl.parallel import AXIS, Batch, StepFn
from jaxssl.state import TrainState, ema_update, target_subtree


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
  logs_after = Cadence(trainer.total_steps, max(1, config.train.log_every)).log

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
    # The SVD is costly and read only when the loop logs: computed then only.
    metrics.update(representation_health(online.representations[0], axis_name, when=logs_after(state.step + 1)))
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
