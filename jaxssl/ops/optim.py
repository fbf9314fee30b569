"""Optimizers and schedules, configured per parameter by rules on parameter paths; BYOL's EMA momentum schedule.

``make_optimizer`` chains, in the order of the official PyTorch recipes (DINO's and MAE's training loops):

  gradient clipping (``optim.clip_grad_norm``: the global norm, or each parameter's norm as DINO)
  -> LARS / SGD with momentum / Adam's scaling, with weight decay (decoupled for AdamW, as torch's AdamW) times
     each parameter's weight-decay multiplier, on a constant or cosine schedule (``optim.weight_decay_end``)
  -> the learning rate: linear warm-up, cosine decay to ``optim.min_lr``
  -> each parameter's learning-rate multiplier (rules x layer-wise decay); updates of frozen parameters zeroed
     for their first steps, and their momentum or Adam moments started when they start (as PyTorch skips a
     parameter whose gradient is None).

A parameter's settings (``settings_of``) come from the first rule of ``optim.rules`` whose pattern matches its
path in full (``re.fullmatch`` on ``"encoder/block_3/attn/qkv/kernel"``), multiplying the built-in defaults:
learning-rate multiplier 1, weight-decay multiplier 1 for weight matrices and convolution kernels and 0 for
1-D parameters (biases, norms), not frozen. A rule is ``(pattern, lr_mult=1, wd_mult=1, frozen_steps=0)``, as
big_vision's ``lr_mults`` / ``wd_mults`` / frozen patterns folded into one list. With ``optim.frozen_unit="epochs"``
the last entry counts epochs of the run's own data and batch (DINO's ``freeze_last_layer=1``), made steps by
``rules_in_steps`` when the run knows its data.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxssl.common.config_checks import fail

NAMES = ("lars", "sgd", "adamw")
FROZEN_UNITS = ("steps", "epochs")
CLIP_MODES = ("global", "per_parameter", "per_group")
LR_SCALINGS = ("linear_256", "sqrt_1024")
FREEZE_MODES = ("skip", "zero_lr")


class Rule(NamedTuple):
  """Settings for the parameters whose path matches ``pattern`` in full (the first matching rule wins)."""
  pattern: str
  lr_mult: float = 1.0            # times the learning rate
  wd_mult: float = 1.0            # times the weight decay (1-D parameters have none, whatever this says)
  frozen_steps: int = 0           # updates zeroed while the optimizer's step < this


class ParamSettings(NamedTuple):
  """What the optimizer does to one parameter."""
  lr_mult: float
  wd_mult: float
  frozen_steps: int
  rule: int                       # index of the rule that set it in the rules list; -1: none (the defaults)


def path_of(key_path) -> str:
  """``"encoder/block_0/attn/qkv/kernel"`` for a key path of ``jax.tree_util.tree_flatten_with_path``."""
  return jax.tree_util.keystr(tuple(key_path), simple=True, separator="/")


def param_paths(tree: Any) -> list[str]:
  """The path of every leaf of ``tree``, in leaf order."""
  return [path_of(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def rules_in_steps(config: ml_collections.ConfigDict, steps_per_epoch: float) -> tuple:
  """``config.optim.rules`` with their frozen counts in steps: as they are (``optim.frozen_unit="steps"``), or
  each count of epochs times ``steps_per_epoch``, rounded (``"epochs"``)."""
  if config.optim.get("frozen_unit", "steps") != "epochs":
    return tuple(config.optim.rules)
  return tuple(tuple(rule[:3]) + (int(round(rule[3] * steps_per_epoch)),) if len(rule) == 4 else tuple(rule)
               for rule in config.optim.rules)


def rules_of(config: ml_collections.ConfigDict) -> tuple[Rule, ...]:
  """``config.optim.rules`` as Rules (entries are tuples of 1 to 4 items; ``check_rules`` validates them)."""
  return tuple(Rule(*rule) for rule in config.optim.rules)


# --- layer-wise learning-rate decay (BEiT, Bao et al. 2021; MAE's util/lr_decay.py) -----------------------

_EMBEDDING = re.compile(r"encoder/(patch_embed|cls_token|pos_embed|reg_token)(/.*)?|mask_token")
_BLOCK = re.compile(r"encoder/block_(\d+)/.*")


def vit_depth(paths: Sequence[str]) -> int:
  """The number of transformer blocks of the encoder (``encoder/block_N`` parameters), 0 if it has none."""
  blocks = [int(m.group(1)) for m in map(_BLOCK.fullmatch, paths) if m]
  return max(blocks) + 1 if blocks else 0


def layer_id(path: str, depth: int) -> int:
  """The official rule (``get_layer_id_for_vit``; DINOv2's ``get_vit_lr_decay_rate``): the patch embedding,
  class token, position embedding, registers and a masked method's mask token are layer 0, block ``b`` is layer ``b + 1``, everything else (final norm, heads, decoders) is ``depth + 1``."""
  if _EMBEDDING.fullmatch(path):
    return 0
  block = _BLOCK.fullmatch(path)
  return int(block.group(1)) + 1 if block else depth + 1


def layer_scale(path: str, depth: int, decay: float) -> float:
  """``decay ** (depth + 1 - layer_id)``: 1 for the head, ``decay ** (depth + 1)`` for the patch embedding."""
  return decay ** (depth + 1 - layer_id(path, depth)) if decay != 1.0 else 1.0


# --- per-parameter settings -------------------------------------------------------------------------------

def settings_of(tree: Any, rules: Sequence[Rule], layer_decay: float = 1.0) -> list[ParamSettings]:
  """The settings of every leaf of ``tree`` (parameters, gradients or updates: only paths and ``ndim`` are
  read), in leaf order."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  paths = [path_of(p) for p, _ in leaves]
  depth = vit_depth(paths) if layer_decay != 1.0 else 0
  compiled = [re.compile(rule.pattern) for rule in rules]
  out = []
  for path, (_, leaf) in zip(paths, leaves):
    index = next((i for i, c in enumerate(compiled) if c.fullmatch(path)), -1)
    rule = rules[index] if index >= 0 else Rule(".*")
    default_wd = 1.0 if jnp.ndim(leaf) > 1 else 0.0
    out.append(ParamSettings(lr_mult=float(rule.lr_mult) * layer_scale(path, depth, layer_decay),
                             wd_mult=float(rule.wd_mult) * default_wd,
                             frozen_steps=int(rule.frozen_steps), rule=index))
  return out


def _map_settings(fn: Callable[[jax.Array, ParamSettings], jax.Array], tree: Any,
                  settings: Callable[[Any], list[ParamSettings]]) -> Any:
  leaves, treedef = jax.tree_util.tree_flatten(tree)
  return jax.tree_util.tree_unflatten(treedef, [fn(x, s) for x, s in zip(leaves, settings(tree))])


# --- validation -----------------------------------------------------------------------------------------

def check_config(config: ml_collections.ConfigDict) -> None:
  """The optimizer's fields alone (before any model is built); one ConfigError naming the first bad one."""
  o = config.optim
  if not isinstance(o.rules, (tuple, list)):
    fail("optim.rules", o.rules, "must be a tuple of rules (pattern, lr_mult, wd_mult, frozen_steps)")
  for i, rule in enumerate(o.rules):
    field = f"optim.rules[{i}]"
    if not isinstance(rule, (tuple, list)) or not 1 <= len(rule) <= 4:
      fail(field, rule, "must be a tuple (pattern, lr_mult=1.0, wd_mult=1.0, frozen_steps=0)")
    if not isinstance(rule[0], str):
      fail(field, rule, "its pattern must be a string (a regular expression on parameter paths)")
    try:
      re.compile(rule[0])
    except re.error as e:
      fail(field, rule, f"bad regular expression: {e}")
    for name, value in zip(("lr_mult", "wd_mult"), rule[1:3]):
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        fail(field, rule, f"its {name} must be a finite number >= 0")
    if len(rule) == 4 and o.frozen_unit == "epochs":
      if isinstance(rule[3], bool) or not isinstance(rule[3], (int, float)) or not 0 <= rule[3] < math.inf:
        fail(field, rule, "its frozen count must be a number of epochs >= 0 (optim.frozen_unit='epochs')")
    elif len(rule) == 4 and (isinstance(rule[3], bool) or not isinstance(rule[3], int) or rule[3] < 0):
      fail(field, rule, "its frozen_steps must be an integer >= 0")
  if not 0.0 < o.layer_decay <= 1.0:
    fail("optim.layer_decay", o.layer_decay, "must be in (0, 1] (1: no layer-wise decay; MAE fine-tunes ViT-B "
         "with 0.65)")
  if not o.clip_grad_norm >= 0:
    fail("optim.clip_grad_norm", o.clip_grad_norm, "must be non-negative (0: no clipping)")
  if o.clip_mode not in CLIP_MODES:
    fail("optim.clip_mode", o.clip_mode, f"use one of {', '.join(map(repr, CLIP_MODES))}")
  if o.clip_mode == "per_group":
    groups = o.get("clip_groups", ())
    if not isinstance(groups, (tuple, list)) or not groups or not all(isinstance(g, str) for g in groups):
      fail("optim.clip_groups", groups, "clip_mode='per_group' needs a tuple of regular expressions on parameter "
           "paths, one per group")
    for g in groups:
      try:
        re.compile(g)
      except re.error as e:
        fail("optim.clip_groups", groups, f"bad regular expression {g!r}: {e}")
  if o.get("clip_exclude", ""):
    try:
      re.compile(o.clip_exclude)
    except re.error as e:
      fail("optim.clip_exclude", o.clip_exclude, f"bad regular expression: {e}")
  if o.get("lr_scaling", "linear_256") not in LR_SCALINGS:
    fail("optim.lr_scaling", o.lr_scaling, f"use one of {', '.join(map(repr, LR_SCALINGS))}")
  if o.get("freeze_mode", "skip") not in FREEZE_MODES:
    fail("optim.freeze_mode", o.freeze_mode, f"use one of {', '.join(map(repr, FREEZE_MODES))}")
  if not o.min_lr >= 0:
    fail("optim.min_lr", o.min_lr, "must be non-negative")
  if not 0.0 <= o.get("warmup_from", 0.0) < 1.0:
    fail("optim.warmup_from", o.warmup_from, "must be in [0, 1): the share of the peak lr the warm-up starts at")
  if not o.get("schedule_stretch", 1.0) >= 1.0:
    fail("optim.schedule_stretch", o.schedule_stretch, "must be >= 1 (the cosines over that many times the run)")
  if o.min_lr >= peak_learning_rate(config):
    fail("optim.min_lr", o.min_lr, f"must be below the peak learning rate {peak_learning_rate(config):g} "
         f"(optim.base_lr scaled by train.batch_size, optim.lr_scaling={o.get('lr_scaling', 'linear_256')!r})")


def check_against_params(config: ml_collections.ConfigDict, params: Any) -> None:
  """Rules must cover what they claim (big_vision's insistence): each rule is the first match of at least one
  parameter, and layer-wise decay needs a ViT's blocks. ``params`` may be abstract (shapes only)."""
  paths = param_paths(params)
  rules = rules_of(config)
  used = {s.rule for s in settings_of(params, rules)}
  for i, rule in enumerate(rules):
    if i not in used:
      shadowed = any(re.fullmatch(rule.pattern, p) for p in paths)
      why = ("every parameter it matches is taken by an earlier rule" if shadowed else
             f"matches no parameter (paths look like {', '.join(_examples(paths))})")
      fail(f"optim.rules[{i}]", tuple(config.optim.rules[i]), why)
  exclude = config.optim.get("clip_exclude", "")
  if exclude and not any(re.fullmatch(exclude, p) for p in paths):
    fail("optim.clip_exclude", exclude, f"matches no parameter (paths look like {', '.join(_examples(paths))})")
  if config.optim.clip_mode == "per_group":
    groups = tuple(config.optim.clip_groups)
    for path in paths:
      if clip_group(path, groups) < 0:
        fail("optim.clip_groups", groups, f"parameter {path} is in no group")
  if config.optim.layer_decay != 1.0 and not vit_depth(paths):
    if config.model.get("scan_layers", False):
      fail("optim.layer_decay", config.optim.layer_decay, "needs the blocks one by one (encoder/block_N "
           "parameters); model.scan_layers=True stacks them: turn it off for layer-wise decay (a run pretrained "
           "with it still loads)")
    fail("optim.layer_decay", config.optim.layer_decay, f"needs a ViT encoder (encoder/block_N parameters); "
         f"model.encoder={config.model.encoder!r} has none")


def _examples(paths: Sequence[str], count: int = 3) -> list[str]:
  """A few paths from different top-level modules, to show the format."""
  seen, out = set(), []
  for p in paths:
    top = p.split("/")[0]
    if top not in seen:
      seen.add(top)
      out.append(p)
  return out[:count]


# --- schedules ------------------------------------------------------------------------------------------

def warmup_steps(config: ml_collections.ConfigDict, steps_per_epoch: float = 0.0) -> int:
  """``optim.warmup_epochs`` x ``steps_per_epoch`` when both are set, else ``optim.warmup_steps``."""
  if config.optim.get("warmup_epochs", 0.0) > 0 and steps_per_epoch > 0:
    return int(round(config.optim.warmup_epochs * steps_per_epoch))
  return int(config.optim.warmup_steps)


def peak_learning_rate(config: ml_collections.ConfigDict) -> float:
  """``base_lr * global_batch / 256`` (Goyal et al. 2017), or with ``optim.lr_scaling="sqrt_1024"``
  ``base_lr * sqrt(global_batch / 1024)`` (DINOv2's ``scaling_rule: sqrt_wrt_1024``)."""
  if config.optim.get("lr_scaling", "linear_256") == "sqrt_1024":
    return config.optim.base_lr * math.sqrt(config.train.batch_size / 1024.0)
  return config.optim.base_lr * config.train.batch_size / 256.0


# A warm-up that would not end before the run does is cut to this share of the run (``jaxssl.schema.schedules``
# says so in one line): otherwise the run ends at its peak learning rate.
SHORT_RUN_WARMUP_SHARE = 0.5


def run_warmup(config: ml_collections.ConfigDict, total_steps: int, steps_per_epoch: float = 0.0) -> int:
  """The warm-up a run of ``total_steps`` uses: ``warmup_steps``, or where that is not shorter than the run,
  ``SHORT_RUN_WARMUP_SHARE`` of it."""
  warmup = warmup_steps(config, steps_per_epoch)
  if warmup >= total_steps:
    return int(total_steps * SHORT_RUN_WARMUP_SHARE)
  return min(warmup, max(total_steps - 1, 0))


def learning_rate_schedule(config: ml_collections.ConfigDict, total_steps: int,
                           steps_per_epoch: float = 0.0) -> optax.Schedule:
  """Linear warm-up from 0 (or ``optim.warmup_from`` x the peak: MSN's ``start_lr``) to the peak
  (``run_warmup``), then cosine decay to ``optim.min_lr`` (DINO's and MAE's floor) over the run, or over
  ``optim.schedule_stretch`` times it (MSN's ``T_max = 1.25 x`` the run: it ends before the floor)."""
  warmup = run_warmup(config, total_steps, steps_per_epoch)
  peak = peak_learning_rate(config)
  stretched = int(round(total_steps * config.optim.get("schedule_stretch", 1.0)))
  return optax.warmup_cosine_decay_schedule(init_value=peak * config.optim.get("warmup_from", 0.0),
                                            peak_value=peak, warmup_steps=warmup,
                                            decay_steps=max(stretched, warmup + 1),
                                            end_value=float(config.optim.min_lr))


def weight_decay_schedule(config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """``optim.weight_decay`` throughout, or with ``optim.weight_decay_end`` >= 0 a cosine from it to that value
  over the run (or ``optim.schedule_stretch`` times it), as DINO's ``cosine_scheduler(weight_decay, weight_decay_end, ...)`` (0.04 -> 0.4)."""
  start, end = float(config.optim.weight_decay), float(config.optim.weight_decay_end)
  if end < 0:
    return lambda count: jnp.asarray(start, jnp.float32)
  length = max(int(round(total_steps * config.optim.get("schedule_stretch", 1.0))), 1)
  def schedule(count):
    progress = jnp.minimum(count / length, 1.0)
    return end + (start - end) * (1.0 + jnp.cos(math.pi * progress)) / 2.0
  return schedule


# --- transformations ------------------------------------------------------------------------------------

class CountState(NamedTuple):
  count: jax.Array                # int32 []: updates applied so far


def _count_init(params) -> CountState:
  del params
  return CountState(count=jnp.zeros([], jnp.int32))


def clip_per_parameter(max_norm: float) -> optax.GradientTransformation:
  """Each gradient leaf scaled to a norm of at most ``max_norm``: DINO's ``utils.clip_gradients``
  (``g *= clip / (|g| + 1e-6)`` where that is below 1)."""

  def update(updates, state, params=None):
    def clip(g):
      coef = max_norm / (jnp.linalg.norm(g.astype(jnp.float32).ravel()) + 1e-6)
      return jnp.where(coef < 1.0, g * coef.astype(g.dtype), g)
    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def clip_group(path: str, patterns: Sequence[str]) -> int:
  """The index of the first pattern matching ``path`` in full, -1 for none."""
  return next((i for i, p in enumerate(patterns) if re.fullmatch(p, path)), -1)


def clip_per_group(max_norm: float, patterns: Sequence[str]) -> optax.GradientTransformation:
  """The gradients of each group of parameters (the first of ``patterns`` that matches a path in full) scaled
  together to a global norm of at most ``max_norm``: DINOv2's ``clip_grad_norm_`` on each student module
  (backbone, DINO head, iBOT head) apart, torch's ``g *= max_norm / (norm + 1e-6)`` where that is below 1."""

  def update(updates, state, params=None):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(updates)
    groups = [clip_group(path_of(p), patterns) for p, _ in leaves]
    out = [g for _, g in leaves]
    for group in sorted(set(groups)):
      members = [i for i, k in enumerate(groups) if k == group]
      norm = jnp.sqrt(sum(jnp.sum(jnp.square(out[i].astype(jnp.float32))) for i in members))
      coef = jnp.minimum(max_norm / (norm + 1e-6), 1.0)
      for i in members:
        out[i] = out[i] * coef.astype(out[i].dtype)
    return jax.tree_util.tree_unflatten(treedef, out), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def _frozen_at(count: jax.Array, s: ParamSettings) -> jax.Array:
  """True while a parameter with settings ``s`` is frozen, ``count`` updates into the run."""
  return count < s.frozen_steps


def gate_frozen(settings: Callable[[Any], list[ParamSettings]]) -> optax.GradientTransformation:
  """Updates of frozen parameters zeroed before SGD's or LARS's momentum while the step is below their
  ``frozen_steps``: PyTorch's optimizers skip a parameter whose gradient DINO's ``cancel_gradients_last_layer``
  set to None, so its momentum buffer (and its weight decay) starts at its first trained step."""

  def update(updates, state, params=None):
    def gate(u, s):
      return u if s.frozen_steps == 0 else jnp.where(_frozen_at(state.count, s), jnp.zeros_like(u), u)
    return _map_settings(gate, updates, settings), CountState(count=optax.safe_increment(state.count))

  return optax.GradientTransformation(_count_init, update)


def scale_by_adam(b1: float, b2: float, eps: float,
                  settings: Callable[[Any], list[ParamSettings]] | None = None) -> optax.GradientTransformation:
  """``optax.scale_by_adam`` (its state, and its numbers for parameters never frozen), in which a frozen
  parameter is skipped as ``torch.optim.AdamW`` skips one whose gradient is None (DINO's last layer in its
  first epoch): while the step is below its ``frozen_steps`` its moments stay as they are and its update is 0,
  and afterwards its bias correction counts its own steps, ``count + 1 - frozen_steps``, not the run's."""
  adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)
  if settings is None:
    return adam

  def update(updates, state, params=None):
    per_leaf = settings(updates)
    if not any(s.frozen_steps for s in per_leaf):
      return adam.update(updates, state, params)
    frozen = [_frozen_at(state.count, s) for s in per_leaf]
    grads, treedef = jax.tree_util.tree_flatten(updates)
    gated = [g if not s.frozen_steps else jnp.where(f, jnp.zeros_like(g), g)
             for g, s, f in zip(grads, per_leaf, frozen)]
    out, new = adam.update(jax.tree_util.tree_unflatten(treedef, gated), state, params)
    leaves = jax.tree_util.tree_leaves
    outs, mus, nus = leaves(out), leaves(new.mu), leaves(new.nu)
    old_mus, old_nus = leaves(state.mu), leaves(state.nu)
    for i, s in enumerate(per_leaf):
      if not s.frozen_steps:
        continue
      f = frozen[i]
      mus[i], nus[i] = jnp.where(f, old_mus[i], mus[i]), jnp.where(f, old_nus[i], nus[i])
      own = jnp.maximum(new.count - s.frozen_steps, 1).astype(jnp.float32)     # this parameter's steps
      mu_hat = mus[i] / (1.0 - b1 ** own).astype(mus[i].dtype)
      nu_hat = nus[i] / (1.0 - b2 ** own).astype(nus[i].dtype)
      outs[i] = jnp.where(f, jnp.zeros_like(outs[i]), mu_hat / (jnp.sqrt(nu_hat) + eps))
    rebuild = lambda xs: jax.tree_util.tree_unflatten(treedef, xs)
    return rebuild(outs), optax.ScaleByAdamState(count=new.count, mu=rebuild(mus), nu=rebuild(nus))

  return optax.GradientTransformation(adam.init, update)


def add_weight_decay(weight_decay: float | optax.Schedule,
                     settings: Callable[[Any], list[ParamSettings]]) -> optax.GradientTransformation:
  """updates + weight_decay(step) x wd_mult x params, leaf by leaf (leaves with wd_mult 0 untouched).
  ``weight_decay``: a constant or a schedule of the step."""
  scheduled = callable(weight_decay)

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("add_weight_decay needs the parameters")
    wd = weight_decay(state.count) if scheduled else weight_decay
    flat_params = jax.tree.leaves(params)
    flat, treedef = jax.tree_util.tree_flatten(updates)
    out = [u if s.wd_mult == 0.0 else u + (wd if s.wd_mult == 1.0 else wd * s.wd_mult) * p
           for u, p, s in zip(flat, flat_params, settings(updates))]
    new_state = CountState(count=optax.safe_increment(state.count)) if scheduled else state
    return jax.tree_util.tree_unflatten(treedef, out), new_state

  return optax.GradientTransformation(_count_init if scheduled else (lambda params: optax.EmptyState()), update)


def scale_by_param_settings(settings: Callable[[Any], list[ParamSettings]],
                            counts_steps: bool) -> optax.GradientTransformation:
  """Each update times its learning-rate multiplier, and zero while the step is below its ``frozen_steps``
  (what weight decay added after the direction is cancelled too: a skipped parameter does not decay).
  ``counts_steps``: some rule freezes parameters (the state then counts steps)."""

  def update(updates, state, params=None):
    def scale(u, s):
      if s.lr_mult != 1.0:
        u = u * jnp.asarray(s.lr_mult, u.dtype)
      if s.frozen_steps > 0:
        u = u * (state.count >= s.frozen_steps).astype(u.dtype)
      return u
    new_state = CountState(count=optax.safe_increment(state.count)) if counts_steps else state
    return _map_settings(scale, updates, settings), new_state

  return optax.GradientTransformation(_count_init if counts_steps else (lambda params: optax.EmptyState()),
                                      update)


def _matrices(params):
  """True for weight matrices and convolution kernels: LARS's trust ratio skips biases and norms (BYOL)."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


def lars_direction(trust_coefficient: float, momentum: float) -> list[optax.GradientTransformation]:
  """LARS (You et al. 2017, arXiv:1708.03888) after weight decay, in the order of DeepMind's BYOL
  (byol/utils/optimizers.py) and PyTorch's LARS (lightly, solo-learn): trust ratio, momentum, and only then
  (in ``make_optimizer``) the learning rate, so a step is lr_t times the momentum buffer of unscaled updates.

  optax.lars applies the learning rate before the momentum (a buffer of lr-scaled updates). The two agree while
  the learning rate is constant; during a warm-up optax's steps lag (at the end of a 10-step warm-up about half
  as large), which left BYOL's first steps behind lightly's from the same weights
  (benchmarks/parity/step_parity_vs_lightly.py).
  """
  return [optax.masked(optax.scale_by_trust_ratio(trust_coefficient=trust_coefficient), _matrices),
          optax.trace(decay=momentum)]


def make_optimizer(config: ml_collections.ConfigDict, total_steps: int,
                   steps_per_epoch: float = 0.0) -> optax.GradientTransformation:
  """LARS (SimCLR, BYOL), SGD with momentum or AdamW (ViTs), with the clipping, weight-decay schedule,
  learning-rate schedule and per-parameter rules of ``config.optim`` (module docstring)."""
  o = config.optim
  rules = rules_of(config)
  settings = lambda tree: settings_of(tree, rules, o.layer_decay)
  freezes = any(r.frozen_steps > 0 for r in rules)
  # DINOv2 freezes with a learning rate of 0: the moments still run and only the update is zeroed.
  skips = freezes and o.get("freeze_mode", "skip") == "skip"
  gate = [gate_frozen(settings)] if skips else []
  parts = []
  if o.clip_grad_norm > 0:
    clips = {"global": lambda: optax.clip_by_global_norm(o.clip_grad_norm),
             "per_parameter": lambda: clip_per_parameter(o.clip_grad_norm),
             "per_group": lambda: clip_per_group(o.clip_grad_norm, tuple(o.clip_groups))}
    clip = clips[o.clip_mode]()
    if o.get("clip_exclude", ""):
      # MSN clips the encoder's gradients (its head inside) and not the prototypes': the excluded leaves are left
      # out of the norm and of the scaling.
      keep = lambda tree: jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(tree), [
          not re.fullmatch(o.clip_exclude, p) for p in param_paths(tree)])
      clip = optax.masked(clip, keep)
    parts.append(clip)
  if o.weight_decay_end < 0 and all(float(r.wd_mult) in (0.0, 1.0) for r in rules):
    # Each parameter decayed by weight_decay or not at all: optax's own transformation, so that the optimizer
    # state has the structure it had before the rules and older checkpoints still restore.
    mask = lambda tree: jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(tree),
                                                     [s.wd_mult != 0.0 for s in settings(tree)])
    decay = optax.add_decayed_weights(float(o.weight_decay), mask=mask)
  else:
    decay = add_weight_decay(weight_decay_schedule(config, total_steps) if o.weight_decay_end >= 0
                             else float(o.weight_decay), settings)
  learning_rate = optax.scale_by_learning_rate(learning_rate_schedule(config, total_steps, steps_per_epoch))
  # Laid out as optax.adamw / optax.sgd lay out theirs (sgd's momentum and lr a chain of their own), so that
  # the state's leaves keep the paths they had before the rules.
  # Frozen parameters (optim.rules' frozen_steps) are skipped as PyTorch skips a parameter without a gradient:
  # their momentum or Adam moments start at their first trained step (gate_frozen, scale_by_adam), and their
  # update, weight decay included, is zero until then (scale_by_param_settings).
  if o.name == "lars":
    parts += [decay, *gate, *lars_direction(o.trust_coefficient, o.momentum), learning_rate]
  elif o.name == "sgd":
    parts += [decay, *gate, optax.chain(optax.trace(decay=o.momentum, nesterov=bool(o.nesterov)), learning_rate)]
  elif o.name == "adamw":
    parts += [scale_by_adam(o.b1, o.b2, 1e-8, settings if skips else None), decay, learning_rate]
  else:
    raise ValueError(f"unknown optimizer {o.name!r}")
  if rules or o.layer_decay != 1.0:
    parts.append(scale_by_param_settings(settings, counts_steps=freezes))
  return optax.chain(*parts)


def ema_momentum(step: jax.Array, total_steps: int, base_momentum: float, schedule: str = "cosine") -> jax.Array:
  """BYOL's tau: 1 - (1 - base) * (cos(pi * step / total) + 1) / 2, rising from base to 1; "linear" from base
  to 1 (I-JEPA's ``momentum_scheduler``); or "constant"."""
  if schedule == "constant":
    return jnp.asarray(base_momentum, jnp.float32)
  progress = jnp.minimum(step / max(total_steps, 1), 1.0)
  if schedule == "linear":
    return base_momentum + (1.0 - base_momentum) * progress
  return 1.0 - (1.0 - base_momentum) * (jnp.cos(math.pi * progress) + 1.0) / 2.0
