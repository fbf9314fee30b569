"""The Method contract: a method is data plus pure functions, typed as Protocols (in the spirit of optax's
GradientTransformation, whose ``init`` and ``update`` are typed the same way).

The trainer calls, inside the jitted per-device step, with ``step`` the number of optimizer steps taken:

    online  = Outputs of the trained network on every view   (gradients flow)
    target  = Outputs of the EMA network on every view, or None when ``ema`` is None (no gradient)
    loss, metrics = method.loss(online, target, method_state, labels, step, axis_name)
    method_state  = method.update_state(method_state, online, target, step, axis_name)
    target       <- tau * target + (1 - tau) * online, tau = method.ema(step, total_steps)

and never looks at which method it runs. A method module (``jaxssl/methods/NAME.py``) provides:

    make(config) -> Method            the functions below, closed over the method's config fields
    defaults() -> dict                the method's config fields (``config.method``) and their paper values
    check(config) -> None             validation of those fields (config_checks helpers; ConfigError)
    small(batch_size) -> dict         dotted overrides for a quick smoke run (tests): small heads and sizes
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Sequence

import flax.linen as nn
import jax
import ml_collections

from jaxssl import augment, config_checks, optim
from jaxssl.models import MLP


class Outputs(NamedTuple):
  """Per-view outputs of a network, each a list with one [N, dim] array per view, and (online network only) the
  parameters that produced them, for losses that use a head's weights directly (SwAV's prototypes)."""
  representations: Sequence[jax.Array]
  projections: Sequence[jax.Array]
  predictions: Sequence[jax.Array] | None
  params: Any = None


class Heads(NamedTuple):
  """The method's heads on top of the encoder. ``projector`` maps representations to projections (the EMA
  target keeps a copy of it); ``predictor`` (optional) maps projections to predictions; ``prototypes``
  (optional) holds parameters the loss reads from ``online.params["prototypes"]`` (SwAV's), initialised with
  the network and trained, but not applied in the forward pass."""
  projector: nn.Module
  predictor: nn.Module | None = None
  prototypes: nn.Module | None = None


class MakeHeads(Protocol):
  def __call__(self, config: ml_collections.ConfigDict, axis_name: str | None, dtype: Any) -> Heads: ...


class MakeRecipes(Protocol):
  def __call__(self, config: ml_collections.ConfigDict) -> Sequence[augment.ViewRecipe]: ...


class LossFn(Protocol):
  def __call__(self, online: Outputs, target: Outputs | None, method_state: Any, labels: jax.Array,
               step: jax.Array, axis_name: str | None) -> tuple[jax.Array, dict[str, jax.Array]]: ...


class InitStateFn(Protocol):
  def __call__(self, key: jax.Array, config: ml_collections.ConfigDict) -> Any: ...


class UpdateStateFn(Protocol):
  def __call__(self, method_state: Any, online: Outputs, target: Outputs | None, step: jax.Array,
               axis_name: str | None) -> Any: ...


class UpdateMaskFn(Protocol):
  def __call__(self, params: Any, step: jax.Array) -> Any: ...


class EmaSchedule(Protocol):
  def __call__(self, step: jax.Array, total_steps: int) -> jax.Array: ...


def _no_state(key, config):
  return ()


def _same_state(method_state, online, target, step, axis_name):
  return method_state


class Method(NamedTuple):
  """A self-supervised method.

  Attributes:
    name: registry name.
    make_heads: the heads (projector, optional predictor, optional prototypes), Flax modules.
    recipes: one augment.ViewRecipe per view.
    loss: (online, target, method_state, labels, step, axis_name) -> (scalar loss, dict of scalar metrics).
    ema: (step, total_steps) -> tau when the method keeps an EMA target of encoder + projector
      (``state.ema_params``; the trainer passes its outputs as ``target``); None for no target.
    init_state: (key, config) -> method state pytree (queues, centres, ...); ``()`` for none.
    update_state: (method_state, online, target, step, axis_name) -> new method state.
    needs_labels: the loss uses the labels (SupCon); the trainer refuses an unlabeled train split.
    target_views: indices of the views the EMA target sees (None: all); ``target`` lists only those, in order.
    online_views: indices of the views the online network sees (None: all); ``online`` lists only those.
    update_mask: (params, step) -> pytree like params of 0/1 multipliers for the optimizer's updates, or None.
      A 0 keeps a parameter fixed at that step (DINO's last layer in the first epoch).
  """
  name: str
  make_heads: MakeHeads
  recipes: MakeRecipes
  loss: LossFn
  ema: EmaSchedule | None = None
  init_state: InitStateFn = _no_state
  update_state: UpdateStateFn = _same_state
  needs_labels: bool = False
  target_views: tuple[int, ...] | None = None
  update_mask: UpdateMaskFn | None = None
  online_views: tuple[int, ...] | None = None

  @property
  def uses_ema(self) -> bool:
    return self.ema is not None


def ema_schedule(base_momentum: float, schedule: str = "cosine") -> EmaSchedule:
  """BYOL's tau schedule from ``base_momentum`` (cosine to 1), or a constant tau."""
  return lambda step, total_steps: optim.ema_momentum(step, total_steps, base_momentum, schedule)


# ----------------------------------------------------------------------------------------------------------------
# Building blocks the methods share.


def recipe_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The view-recipe arguments every method shares, from ``config.augment``: crop size and scale, and the
  optional rotation (off by default, as in the papers' recipes)."""
  a = config.augment
  return {"size": a.size, "crop_scale": tuple(a.crop_scale), "rotation_prob": a.rotation_prob,
          "rotation_degrees": a.rotation_degrees}


def mlp_heads(config: ml_collections.ConfigDict, axis_name: str | None, dtype: Any, *,
              projector_last_bn: bool = False, with_predictor: bool = False) -> Heads:
  """The usual heads: an MLP projector (method.proj_hidden_dims -> method.proj_dim) and, if asked, an MLP
  predictor (method.pred_hidden_dims -> method.proj_dim)."""
  m = config.method
  projector = MLP(hidden_dims=tuple(m.proj_hidden_dims), output_dim=m.proj_dim, last_bn=projector_last_bn,
                  axis_name=axis_name, dtype=dtype)
  predictor = None
  if with_predictor:
    predictor = MLP(hidden_dims=tuple(m.pred_hidden_dims), output_dim=m.proj_dim, axis_name=axis_name,
                    dtype=dtype)
  return Heads(projector, predictor)


def simclr_pair(config: ml_collections.ConfigDict, strength: float = 1.0) -> tuple[augment.ViewRecipe, ...]:
  """SimCLR's two views with jitter strength ``strength`` x augment.jitter_strength and augment.blur_prob."""
  return augment.simclr_recipes(**recipe_kwargs(config), blur_prob=config.augment.blur_prob,
                                strength=strength * config.augment.jitter_strength)


def byol_pair(config: ml_collections.ConfigDict) -> tuple[augment.ViewRecipe, ...]:
  """BYOL's asymmetric pair with augment.blur_probs and augment.solarize_probs."""
  return augment.byol_recipes(**recipe_kwargs(config), blur_probs=tuple(config.augment.blur_probs),
                              solarize_probs=tuple(config.augment.solarize_probs))


def check_heads(config: ml_collections.ConfigDict) -> None:
  """The MLP heads' widths: method.proj_hidden_dims, method.proj_dim and (if present) method.pred_hidden_dims."""
  config_checks.widths(config, "method.proj_hidden_dims")
  config_checks.positive_int(config, "method.proj_dim")
  if "pred_hidden_dims" in config.method:
    config_checks.widths(config, "method.pred_hidden_dims")


def check_momentum(config: ml_collections.ConfigDict) -> None:
  config_checks.in_range(config, "method.base_momentum", 0.0, 1.0, closed_high=False)


def small_heads(with_predictor: bool = False) -> dict[str, Any]:
  """Overrides for a smoke run: a 32-wide hidden layer and 16-dim projections."""
  out = {"method.proj_hidden_dims": (32,), "method.proj_dim": 16}
  if with_predictor:
    out["method.pred_hidden_dims"] = (32,)
  return out
