"""Joint-embedding methods through one adapter: views -> encoder -> projector (-> predictor) per view, then a
loss on the per-view outputs.

SimCLR, BYOL, VICReg and the other joint-embedding methods write only their heads, their view recipes and a loss
on ``Outputs``; ``method`` turns them into a ``base.Method`` that runs the online network (and the EMA target,
with no gradient) on the views itself, one view at a time so each view has its own BatchNorm statistics, as the
reference implementations do.

    loss(online, target, method_state, labels, step, axis_name) -> (scalar loss, dict of scalar metrics)
    update_state(method_state, online, target, step, axis_name) -> new method state
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Sequence

import flax.linen as nn
import jax
import ml_collections

from jaxssl.common import config_checks
from jaxssl.methods import base
from jaxssl.models import MLP, SSLNetwork


class Outputs(NamedTuple):
  """Per-view outputs of a network, each a list with one [N, dim] array per view."""
  representations: Sequence[jax.Array]
  projections: Sequence[jax.Array]
  predictions: Sequence[jax.Array] | None


class Heads(NamedTuple):
  """The heads on top of the encoder: ``projector`` maps representations to projections (the EMA target keeps
  a copy of it); ``predictor`` (optional) maps projections to predictions."""
  projector: nn.Module
  predictor: nn.Module | None = None


class MakeHeads(Protocol):
  def __call__(self, config: ml_collections.ConfigDict, axis_name: str | None, dtype: Any) -> Heads: ...


class JointLossFn(Protocol):
  def __call__(self, online: Outputs, target: Outputs | None, method_state: Any, labels: jax.Array,
               step: jax.Array, axis_name: str | None) -> tuple[jax.Array, dict[str, jax.Array]]: ...


class JointUpdateStateFn(Protocol):
  def __call__(self, method_state: Any, online: Outputs, target: Outputs | None, step: jax.Array,
               axis_name: str | None) -> Any: ...


TARGET_PARTS = ("encoder", "projector")


def forward_views(model: nn.Module, variables: base.Variables, views: Sequence[jax.Array], **kwargs):
  """``model`` in training mode on each view in turn (BatchNorm statistics per view, updated view after view).

  Returns (a list with the model's output tuple for each view, the updated batch_stats)."""

  def apply_all(module, views):
    return [module(v, train=True, **kwargs) for v in views]

  return base.apply_train(model, variables, views, method=apply_all)


def outputs_of(per_view: Sequence[tuple]) -> Outputs:
  """[(h, z, p) per view] -> Outputs (predictions None when the network gave none)."""
  h, z, p = ([out[i] for out in per_view] for i in range(3))
  return Outputs(representations=h, projections=z, predictions=p if p[0] is not None else None)


def _select(views: Sequence[jax.Array], indices: tuple[int, ...] | None) -> list[jax.Array]:
  return list(views) if indices is None else [views[i] for i in indices]


def _same_state(method_state, online, target, step, axis_name):
  return method_state


def method(name: str, make_heads: MakeHeads, recipes: base.MakeRecipes, loss: JointLossFn, *,
           ema: base.EmaSchedule | None = None, init_state: base.InitStateFn = base.no_state,
           update_state: JointUpdateStateFn = _same_state, needs_labels: bool = False,
           target_views: tuple[int, ...] | None = None, online_views: tuple[int, ...] | None = None) -> base.Method:
  """A ``base.Method`` from a joint-embedding method's parts.

  Args:
    name: registry name.
    make_heads: (config, axis_name, dtype) -> Heads; the model is ``SSLNetwork(encoder, projector, predictor)``.
    recipes: one augment.ViewRecipe per view.
    loss: (online, target, method_state, labels, step, axis_name) -> (loss, metrics), on ``Outputs``.
    ema: tau schedule of an EMA target of the encoder and projector, or None for no target.
    init_state, update_state: the method's state; ``update_state`` gets the online and target ``Outputs``.
    needs_labels: the loss reads the labels (SupCon).
    target_views: indices of the views the EMA target sees (None: all); ``target`` lists only those, in order.
    online_views: indices of the views the online network sees (None: all); ``online`` lists only those.
  """

  def make_model(config, encoder, axis_name, dtype):
    heads = make_heads(config, axis_name, dtype)
    return SSLNetwork(encoder=encoder, projector=heads.projector, predictor=heads.predictor)

  def joint_loss(model, online, target, inputs: base.StepInputs) -> base.LossOutput:
    target_outputs = None
    if target is not None:
      per_view, _ = forward_views(model, base.stop_gradient(target), _select(inputs.views, target_views),
                                  with_predictor=False)
      target_outputs = jax.tree.map(jax.lax.stop_gradient, outputs_of(per_view))
    per_view, batch_stats = forward_views(model, online, _select(inputs.views, online_views),
                                          with_predictor=True)
    online_outputs = outputs_of(per_view)
    value, metrics = loss(online_outputs, target_outputs, inputs.method_state, inputs.labels, inputs.step,
                          inputs.axis_name)
    return base.LossOutput(value, metrics, batch_stats, online_outputs.representations[:2],
                           (online_outputs, target_outputs))

  def joint_update_state(method_state, state_inputs, step, axis_name):
    online, target = state_inputs
    return update_state(method_state, online, target, step, axis_name)

  return base.Method(name=name, make_model=make_model, recipes=recipes, loss=joint_loss, ema=ema,
                     ema_parts=TARGET_PARTS if ema is not None else (), init_state=init_state,
                     update_state=joint_update_state, needs_labels=needs_labels)


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


def check_heads(config: ml_collections.ConfigDict) -> None:
  """The MLP heads' widths: method.proj_hidden_dims, method.proj_dim and (if present) method.pred_hidden_dims."""
  config_checks.widths(config, "method.proj_hidden_dims")
  config_checks.positive_int(config, "method.proj_dim")
  if "pred_hidden_dims" in config.method:
    config_checks.widths(config, "method.pred_hidden_dims")


def small_heads(with_predictor: bool = False) -> dict[str, Any]:
  """Overrides for a smoke run: a 32-wide hidden layer and 16-dim projections."""
  out = {"method.proj_hidden_dims": (32,), "method.proj_dim": 16}
  if with_predictor:
    out["method.pred_hidden_dims"] = (32,)
  return out
