"""The Method interface: a method is data plus pure functions (in the spirit of optax.GradientTransformation).

The trainer calls, inside the jitted per-device step:

    online  = Outputs of the trained network on every view   (gradients flow)
    target  = Outputs of the EMA network on every view, or None when ``uses_ema`` is False (no gradient)
    loss, metrics = method.loss(online, target, method_state, labels, axis_name)
    method_state  = method.update_state(method_state, online, target, axis_name)

and never looks at which method it runs.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import ml_collections

from jaxssl import augment
from jaxssl.models import MLP


class Outputs(NamedTuple):
  """Per-view outputs of a network, each a list with one [N, dim] array per view, and (online network only) the
  parameters that produced them, for losses that use a head's weights directly (SwAV's prototypes)."""
  representations: Sequence[jax.Array]
  projections: Sequence[jax.Array]
  predictions: Sequence[jax.Array] | None
  params: Any = None


class Method(NamedTuple):
  """A self-supervised method.

  Attributes:
    name: registry name.
    make_heads: (config, axis_name, dtype) -> (projector, predictor or None), Flax modules.
    recipes: config -> one augment.ViewRecipe per view.
    loss: (online, target, method_state, labels, axis_name) -> (scalar loss, dict of scalar metrics).
    uses_ema: the trainer keeps an EMA copy of encoder + projector (``state.ema_params``) and passes its outputs.
    init_state: (key, config) -> method state pytree (queues, centres, ...); ``()`` for none.
    update_state: (method_state, online, target, axis_name) -> new method state.
    needs_labels: the loss uses the labels (SupCon); the trainer refuses an unlabeled train split.
    target_views: indices of the views the EMA target sees (None: all); ``target`` lists only those, in order.
    online_views: indices of the views the online network sees (None: all); ``online`` lists only those.
    update_mask: (params, step) -> pytree like params of 0/1 multipliers for the optimizer's updates, or None.
      A 0 keeps a parameter fixed at that step (DINO's last layer in the first epoch).
  """
  name: str
  make_heads: Callable[[ml_collections.ConfigDict, str | None, Any], tuple[nn.Module, nn.Module | None]]
  recipes: Callable[[ml_collections.ConfigDict], Sequence[augment.ViewRecipe]]
  loss: Callable[..., tuple[jax.Array, dict[str, jax.Array]]]
  uses_ema: bool = False
  init_state: Callable[[jax.Array, ml_collections.ConfigDict], Any] = lambda key, config: ()
  update_state: Callable[..., Any] = lambda state, online, target, axis_name: state
  needs_labels: bool = False
  target_views: tuple[int, ...] | None = None
  update_mask: Callable[[Any, jax.Array], Any] | None = None
  online_views: tuple[int, ...] | None = None


def recipe_kwargs(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The view-recipe arguments every method shares: crop size and crop scale from ``config.augment``."""
  return {"size": config.augment.size, "crop_scale": tuple(config.augment.crop_scale)}


def mlp_heads(config: ml_collections.ConfigDict, axis_name: str | None, dtype: Any, *,
              projector_last_bn: bool = False, with_predictor: bool = False):
  """The usual heads: an MLP projector (method.proj_hidden_dims -> method.proj_dim) and, if asked, an MLP
  predictor (method.pred_hidden_dims -> method.proj_dim)."""
  m = config.method
  projector = MLP(hidden_dims=tuple(m.proj_hidden_dims), output_dim=m.proj_dim, last_bn=projector_last_bn,
                  axis_name=axis_name, dtype=dtype)
  predictor = None
  if with_predictor:
    predictor = MLP(hidden_dims=tuple(m.pred_hidden_dims), output_dim=m.proj_dim, axis_name=axis_name,
                    dtype=dtype)
  return projector, predictor


def simclr_pair(config: ml_collections.ConfigDict, strength: float = 1.0) -> tuple[augment.ViewRecipe, ...]:
  """SimCLR's two views with jitter strength ``strength`` x augment.jitter_strength and augment.blur_prob."""
  return augment.simclr_recipes(**recipe_kwargs(config), blur_prob=config.augment.blur_prob,
                                strength=strength * config.augment.jitter_strength)


def byol_pair(config: ml_collections.ConfigDict) -> tuple[augment.ViewRecipe, ...]:
  """BYOL's asymmetric pair with augment.blur_probs and augment.solarize_probs."""
  return augment.byol_recipes(**recipe_kwargs(config), blur_probs=tuple(config.augment.blur_probs),
                              solarize_probs=tuple(config.augment.solarize_probs))
