"""The Method contract: a method is data plus pure functions, typed as Protocols (in the spirit of optax's
GradientTransformation, whose ``init`` and ``update`` are typed the same way).

A method owns its model and its forward pass. The trainer builds the encoder the config names and hands it to
the method, which wraps it in whatever it needs (projector and predictor, a decoder and a mask token, ...).
Inside the jitted per-device step, with ``step`` the number of optimizer steps taken, the trainer calls:

    model   = method.make_model(config, encoder, axis_name, dtype)          # once, at build time
    out     = method.loss(model, online, target, inputs)                     # under jax.grad, w.r.t. online.params
    method_state = method.update_state(method_state, out.state_inputs, step, axis_name)
    target <- tau * target + (1 - tau) * online over method.ema_parts, tau = method.ema(step, total_steps)

``online`` and ``target`` are ``Variables`` (params and BatchNorm statistics; ``target`` None without an EMA
target); ``inputs`` carries the augmented views, per-example random keys, labels, the step, the method state
and the axis name. The trainer never looks at which method it runs. A method module
(``jaxssl/methods/NAME.py``) provides:

    make(config) -> Method            the functions below, closed over the method's config fields
    defaults() -> dict                the method's config fields (``config.method``) and their paper values
    check(config) -> None             validation of those fields (config_checks helpers; ConfigError)

and optionally ``config_defaults()``, ``check_devices(config, num_devices)``, ``small(batch_size)`` (dotted
overrides for a quick smoke run: small heads and sizes) and ``reconstruction(config) -> ReconstructFn``.
Supervised fine-tuning fills the same contract from ``jaxssl.tasks`` (its classes and pooling are hooks of
its module, not fields here).

Joint-embedding methods (views -> encoder -> projector -> predictor -> a loss on the outputs) are written
against the narrower contract of ``jaxssl.methods.joint_embedding``, which turns them into a ``Method``.
Every model has ``embed(images) -> [N, D]`` (the encoder's features of full, unmasked images, BatchNorm in
inference mode) and an ``encoder`` attribute: evaluation and ``restore.load_encoder`` read those two.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Sequence

import flax.linen as nn
import jax
import ml_collections

from jaxssl.common import config_checks
from jaxssl.ops import augment, optim


class Variables(NamedTuple):
  """A model's variables: ``params`` and BatchNorm ``batch_stats`` (``{}`` for models without BatchNorm)."""
  params: Any
  batch_stats: Any


class StepInputs(NamedTuple):
  """What one device's step hands the method's loss.

  Attributes:
    views: one float32 [N, S, S, C] array per view recipe, augmented and normalised with the dataset's
      statistics (N: this device's share of the global batch).
    keys: [N] typed PRNG keys, one per example, from (seed, step, the example's global index): masks, drop path
      and any other randomness of the model come from these, so 8 devices give the same step as 1. They are a
      stream of their own, independent of the keys the views were drawn with.
    labels: int32 [N], -1 where unlabeled.
    step: int32 scalar, optimizer steps taken before this one.
    method_state: the method's state (``TrainState.method_state``).
    axis_name: the devices' axis for collectives, or None on one device.
  """
  views: Sequence[jax.Array]
  keys: jax.Array
  labels: jax.Array
  step: jax.Array
  method_state: Any
  axis_name: str | None


class LossOutput(NamedTuple):
  """What a method's loss returns (the trainer differentiates ``loss`` with respect to the online params).

  Attributes:
    loss: scalar.
    metrics: dict of scalars to log (``loss`` among them).
    batch_stats: the online model's updated BatchNorm statistics (``{}`` when it has none).
    representations: [N, D] encoder features of up to two views, for the collapse indicators (rep_std,
      rep_rank) and the online linear probe; empty when the method has no unmasked view's features.
    state_inputs: whatever ``update_state`` reads (the method's outputs); None when it reads nothing.
  """
  loss: jax.Array
  metrics: dict[str, jax.Array]
  batch_stats: Any
  representations: Sequence[jax.Array] = ()
  state_inputs: Any = None


class MakeModel(Protocol):
  def __call__(self, config: ml_collections.ConfigDict, encoder: nn.Module, axis_name: str | None,
               dtype: Any) -> nn.Module: ...


class MakeRecipes(Protocol):
  def __call__(self, config: ml_collections.ConfigDict) -> Sequence[augment.ViewRecipe]: ...


class LossFn(Protocol):
  def __call__(self, model: nn.Module, online: Variables, target: Variables | None,
               inputs: StepInputs) -> LossOutput: ...


class InitStateFn(Protocol):
  def __call__(self, key: jax.Array, config: ml_collections.ConfigDict) -> Any: ...


class UpdateStateFn(Protocol):
  def __call__(self, method_state: Any, state_inputs: Any, step: jax.Array, axis_name: str | None) -> Any: ...


class ReconstructFn(Protocol):
  """A masked method's picture (its module's optional ``reconstruction(config)``, read by ``jaxssl.plot``)."""

  def __call__(self, model: nn.Module, online: Variables, images: jax.Array,
               keys: jax.Array) -> tuple[jax.Array, jax.Array]: ...


class EmaSchedule(Protocol):
  def __call__(self, step: jax.Array, total_steps: int) -> jax.Array: ...


def no_state(key: jax.Array, config: ml_collections.ConfigDict) -> tuple:
  return ()


def _same_state(method_state, state_inputs, step, axis_name):
  return method_state


def init_model(model: nn.Module, key: jax.Array, images: jax.Array) -> dict[str, Any]:
  """The model's variables from ``model.init`` on a batch of images (``train=False``)."""
  return model.init(key, images, train=False)


class Method(NamedTuple):
  """A self-supervised method.

  Attributes:
    name: registry name.
    make_model: (config, encoder, axis_name, dtype) -> the method's Flax model around the encoder. It must have
      an ``encoder`` attribute and an ``embed(images)`` method ([N, H, W, C] normalised images -> [N, D]
      features of the unmasked image, for kNN, the linear probe and ``load_encoder``). Transformer blocks of
      its own (``models.vit.block_class``: a decoder, a predictor) take the ViT encoder's ``gather_axis``, so
      that under FSDP they gather their parameters as the encoder's blocks do.
    recipes: one augment.ViewRecipe per view.
    loss: (model, online, target, inputs) -> LossOutput; runs the model itself (``model.apply``).
    ema: (step, total_steps) -> tau when the method keeps an EMA target (``state.ema_params``); None for none.
    ema_parts: the top-level entries of the params (and BatchNorm statistics) the EMA target copies.
    init_state: (key, config) -> method state pytree (queues, centres, ...); ``()`` for none.
    update_state: (method_state, state_inputs, step, axis_name) -> new method state, after the gradient step.
    needs_labels: the loss uses the labels (SupCon); the trainer refuses an unlabeled train split.
    no_online_probe: why the online probe cannot run with this method (its loss sees no unmasked view's
      features), or "" when it can; the trainer then leaves the probe off and says why.
    drop_path: the method's forward pass hands the encoder per-example keys for stochastic depth (a ViT's
      ``model.drop_path_rate``); validation refuses a rate above 0 for methods that do not.
    fill_state: (method_state, params) -> method state with parts shaped as the parameters (DINOv3's Gram
      teacher, a copy of the encoder), called once after ``init_state`` when a new run's state is made; None
      for none.
    per_example_loss: the loss is a mean of per-example terms with no batch statistic, queue or centre in it,
      so gradient accumulation (``train.grad_accum_steps``) computes the same step (MAE, I-JEPA); the trainer
      refuses accumulation for the others unless ``train.allow_coupled_accumulation``.
  """
  name: str
  make_model: MakeModel
  recipes: MakeRecipes
  loss: LossFn
  ema: EmaSchedule | None = None
  ema_parts: tuple[str, ...] = ()
  init_state: InitStateFn = no_state
  update_state: UpdateStateFn = _same_state
  needs_labels: bool = False
  no_online_probe: str = ""
  drop_path: bool = False
  per_example_loss: bool = False
  fill_state: Any = None

  @property
  def uses_ema(self) -> bool:
    return self.ema is not None


def ema_schedule(base_momentum: float, schedule: str = "cosine") -> EmaSchedule:
  """BYOL's tau schedule from ``base_momentum`` (cosine to 1), or a constant tau."""
  return lambda step, total_steps: optim.ema_momentum(step, total_steps, base_momentum, schedule)


def stream(keys: jax.Array, tag: int) -> jax.Array:
  """[N] keys -> [N] keys of an independent stream ``tag`` (one per use: masks, drop path, ...)."""
  return jax.vmap(lambda k: jax.random.fold_in(k, tag))(keys)


def apply_train(model: nn.Module, variables: Variables, *args, method=None, **kwargs):
  """``model.apply`` in training mode: returns (output, updated batch_stats)."""
  out, updates = model.apply({"params": variables.params, "batch_stats": variables.batch_stats}, *args,
                             mutable=["batch_stats"], method=method, **kwargs)
  return out, updates.get("batch_stats", {})


def stop_gradient(variables: Variables | None) -> Variables | None:
  return None if variables is None else jax.tree.map(jax.lax.stop_gradient, variables)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks the methods share: view recipes and checks.


def recipe_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The view-recipe arguments every method shares, from ``config.augment``: crop size and scale, and the
  optional rotation (off by default, as in the papers' recipes), and the crops' interpolation."""
  a = config.augment
  return {"size": a.size, "crop_scale": tuple(a.crop_scale), "rotation_prob": a.rotation_prob,
          "rotation_degrees": a.rotation_degrees, "interpolation": a.interpolation}


def simclr_pair(config: ml_collections.ConfigDict, strength: float = 1.0) -> tuple[augment.ViewRecipe, ...]:
  """SimCLR's two views with jitter strength ``strength`` x augment.jitter_strength and augment.blur_prob."""
  return augment.simclr_recipes(**recipe_kwargs(config), blur_prob=config.augment.blur_prob,
                                strength=strength * config.augment.jitter_strength)


def byol_pair(config: ml_collections.ConfigDict) -> tuple[augment.ViewRecipe, ...]:
  """BYOL's asymmetric pair with augment.blur_probs and augment.solarize_probs."""
  return augment.byol_recipes(**recipe_kwargs(config), blur_probs=tuple(config.augment.blur_probs),
                              solarize_probs=tuple(config.augment.solarize_probs))


def crop_and_flip(config: ml_collections.ConfigDict) -> tuple[augment.ViewRecipe]:
  """One view: a random resized crop (augment.crop_scale) and a horizontal flip, nothing photometric (MAE's
  pretraining recipe)."""
  return (augment.ViewRecipe(**recipe_kwargs(config), jitter_prob=0.0, grayscale_prob=0.0),)


def check_group_size(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """``method.group_size`` (a method's draws per group of the official per-GPU batch: DINOv2's KoLeo and masks,
  MSN's patch drop) must divide each device's share of the batch, so that no group straddles devices."""
  g = config.method.group_size
  share = config.train.batch_size // max(num_devices, 1)
  if g and share % g:
    config_checks.fail("method.group_size", g, f"each of the {num_devices} devices gets {share} examples: the "
                       "groups (the official per-GPU batch) must divide that")


def check_momentum(config: ml_collections.ConfigDict) -> None:
  config_checks.in_range(config, "method.base_momentum", 0.0, 1.0, closed_high=False)
