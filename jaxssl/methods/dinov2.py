"""DINOv2 (Oquab et al. 2023, "DINOv2: Learning Robust Visual Features without Supervision", arXiv:2304.07193),
as its authors train it: ``dinov2/train/ssl_meta_arch.py`` (``forward_backward``), ``dinov2/data/collate.py``,
``dinov2/loss/`` and ``dinov2/configs/ssl_default_config.yaml``.

The student sees two global crops, with half of them masked in blocks, and the local crops; the EMA teacher sees
the unmasked global crops. Three terms:

- DINO's loss on the class tokens: the teacher's targets on each global crop against the student's outputs on
  every other crop (the official code pairs the global crops A with B and B with A), averaged over the pairs;
- iBOT's loss on the masked patch tokens (a second head, ``separate_head``): each image's mean over its masked
  patches, summed over the images of both crops and divided by their number;
- KoLeo on the student's class tokens (before the head) of each global crop, over each group of
  ``group_size`` images (the official per-GPU batch).

The teacher's targets are Sinkhorn-Knopp equipartitions (``centering="sinkhorn"``) computed once over the class
tokens of both global crops together and once over all masked patch tokens of all images together; or the
centred softmax (``"center"``), the patch centre running over the masked tokens only. The heads' last layers
learn their norms (torch's ``weight_g``) and are frozen with a learning rate of 0 for the first epoch
(``optim.freeze_mode="zero_lr"``). Masks (``masks``): of the 2 x ``group_size`` global crops of a group, half
are masked, their shares spread evenly over 10-50% (stratified), with BEiT's block generator.

DINOv3's Gram anchoring (Simeoni et al. 2025, arXiv:2508.10104; ``dinov3/train/ssl_meta_arch.py``,
``loss/gram_loss.py``) is an option (``method.gram_weight`` > 0): the student's patch tokens of the global crops
keep each image's patch-similarity matrix near that of a Gram teacher, a copy of the EMA teacher's encoder taken
at ``gram_start`` (the official ``it_load_ema_teacher``) and refreshed every ``gram_update_every`` steps from
``gram_update_start`` on, at most ``gram_max_updates`` times (``update_frequency``, ``it_first_update``,
``max_updates``). Not reproduced from DINOv3: the Gram teacher's larger crops (``gram_teacher_crops_size``,
its features resized to the student's grid), the loss weight's schedule, ``img_level=False``.

Not reproduced: the xFormers block-diagonal attention that runs all heads in one call (the same values), the
fp16 gradient scaler, and the high-resolution adaptation at the end of the long runs (518 px).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base, dino, ibot
from jaxssl.methods.base import check_momentum, ema_schedule
from jaxssl.models import DINOHead
from jaxssl.models.ibot import IBOTNetwork, IBOTOutputs, score_patches, student_outputs
from jaxssl.models.vit import ViT
from jaxssl.ops import losses, masking

_MASK_STREAM, _COUNT_STREAM, _DROP_STREAM = 10, 20, 30
CENTERINGS = ("center", "sinkhorn")
LAST_LAYERS = ibot.LAST_LAYERS
step_schedules = dino.step_schedules
steps_from_epochs = dino.steps_from_epochs


def freeze_last_layers(steps: int) -> tuple:
  """``optim.rules`` freezing both heads' last layers (directions and norms) for the first ``steps`` steps."""
  return dino.freeze_last_layer(steps, LAST_LAYERS)


def clip_groups() -> tuple[str, ...]:
  """DINOv2 clips each student module's gradients apart (``optim.clip_mode="per_group"``): the backbone (with
  its mask token), the DINO head, the iBOT head."""
  return ("encoder/.*|mask_token", "projector/.*", "patch_projector/.*")


def most_masked(num_patches: int, m) -> int:
  """The most patches one image can have masked: ``int(L * max ratio)``."""
  return min(num_patches, int(num_patches * float(m.mask_ratio_range[1])))


def mask_counts(keys: jax.Array, m, num_patches: int, axis_name=None) -> jax.Array:
  """int32 [2, n]: how many patches to mask in each global crop (row: crop) of this device's ``n`` examples.

  The official collate draws them per GPU batch (``masking.stratified_mask_counts`` over its 2B crops); here
  per group of ``method.group_size`` consecutive examples from the key of its first one, or with ``group_size``
  0 over the global batch from the key of its first example, so any number of devices draws the same."""
  n = keys.shape[0]
  group = m.group_size if m.group_size and n % m.group_size == 0 else 0   # the pictures' few images: one draw
  draw = lambda key, size: masking.stratified_mask_counts(
      jax.random.fold_in(key, _COUNT_STREAM), 2 * size, num_patches, m.mask_probability,
      tuple(m.mask_ratio_range)).reshape(2, size)          # the official order: crop 0 of all, then crop 1
  if group:
    counts = jax.vmap(lambda k: draw(k, group))(keys[::group])                    # [n / g, 2, g]
    return counts.transpose(1, 0, 2).reshape(2, n)
  if axis_name is None:
    return draw(keys[0], n)
  first = jax.lax.all_gather(jax.random.key_data(keys[:1]), axis_name)[0, 0]
  total = n * jax.lax.psum(1, axis_name)
  counts = draw(jax.random.wrap_key_data(first, impl=jax.random.key_impl(keys)), total)
  return jax.lax.dynamic_slice_in_dim(counts, jax.lax.axis_index(axis_name) * n, n, axis=1)


def masks(keys: jax.Array, m, grid: tuple[int, int], axis_name=None) -> list[jax.Array]:
  """Two [n, gh * gw] float masks (1 masked), one per global crop: BEiT's generator (``MaskingGenerator``,
  blocks of at least ``mask_min_patches``, aspect ``mask_min_aspect`` to its inverse) aiming at the counts of
  ``mask_counts``."""
  counts = mask_counts(keys, m, grid[0] * grid[1], axis_name)
  return [jax.vmap(lambda k, c: masking.block_mask_of_count(k, grid, c, m.mask_min_aspect, m.mask_min_patches))(
      base.stream(keys, _MASK_STREAM + v), counts[v]) for v in range(2)]


def view_masks(config, keys) -> list:
  """[N, L] per view, 1 where the student's patch is masked, None for the local crops: for the pictures."""
  grid = (config.augment.size // config.model.patch_size,) * 2
  return masks(keys, config.method, grid) + [None] * config.augment.num_local_crops


def teacher_outputs(network: IBOTNetwork, params: dict, images: jax.Array, picks: jax.Array) -> IBOTOutputs:
  """The EMA teacher on an unmasked global crop, without gradient: its class-token logits and its patch logits
  at the tokens ``picks`` [N, S] (the student's masked ones first)."""
  params = jax.lax.stop_gradient(params)
  tokens = network.encoder.apply({"params": params["encoder"]}, images, method=ViT.tokens)
  cls_logits = network.projector.apply({"params": params["projector"]}, tokens.cls, False)
  head, head_params = ((network.projector, params["projector"]) if network.patch_projector is None else
                       (network.patch_projector, params["patch_projector"]))
  patch_logits = head.apply({"params": head_params}, masking.at_tokens(tokens.patches, picks),
                            method=lambda module, patches: score_patches(module, patches, False))
  return IBOTOutputs(tokens.cls, cls_logits, patch_logits.astype(jnp.float32))


GRAM_NEGATIVES = ("none", "both", "teacher")


def gram_refresh(step: jax.Array, m) -> jax.Array:
  """True at the steps whose Gram teacher is the EMA teacher as it stands when the step starts: ``gram_start``
  (the first copy) and, as the official loop updates it after iteration ``it`` when ``(it + 1) >=
  it_first_update`` and ``(it + 1) % update_frequency == 0`` (at most ``max_updates`` times), every step
  ``s = it + 1`` that says so."""
  every, first = int(m.gram_update_every), int(m.gram_update_start)
  if every <= 0:
    return step == m.gram_start
  multiples = lambda x: (x + every - 1) // every                # multiples of ``every`` below x (x >= 0)
  before = jnp.maximum(multiples(step) - multiples(jnp.maximum(first, 1)), 0)
  periodic = (step >= jnp.maximum(first, 1)) & (step % every == 0)
  if m.gram_max_updates > 0:
    periodic = periodic & (before < m.gram_max_updates)
  return (step == m.gram_start) | periodic


def gram_teacher(target_encoder, saved, step: jax.Array, m):
  """The Gram teacher's encoder parameters for this step: the EMA teacher's where ``gram_refresh``, else the
  saved copy."""
  refresh = gram_refresh(step, m)
  return jax.tree.map(lambda t, g: jnp.where(refresh, t, g), jax.lax.stop_gradient(target_encoder), saved)


def masked_mean(values: list[jax.Array], weights: list[jax.Array], axis_name=None) -> jax.Array:
  """The mean of [n, S, K] ``values`` over the tokens whose [n, S] weight is 1, over the global batch."""
  total = sum(jnp.sum(v * w[..., None], axis=(0, 1)) for v, w in zip(values, weights))
  count = sum(jnp.sum(w) for w in weights)
  if axis_name is not None:
    total, count = jax.lax.psum(total, axis_name), jax.lax.psum(count, axis_name)
  return total / jnp.maximum(count, 1.0)


def make(config) -> base.Method:
  m = config.method
  grid = (config.augment.size // config.model.patch_size,) * 2
  scored = most_masked(grid[0] * grid[1], m)

  def make_model(config, encoder, axis_name, dtype):
    head = lambda out_dim, bottleneck: DINOHead(hidden_dims=tuple(m.proj_hidden_dims), bottleneck_dim=bottleneck,
                                                out_dim=out_dim, dtype=dtype, norm_last_layer=m.norm_last_layer)
    return IBOTNetwork(encoder, head(m.out_dim, m.bottleneck_dim),
                       head(m.patch_out_dim, m.patch_bottleneck_dim) if m.separate_head else None)

  def init_state(key, config):
    return {"center": jnp.zeros((m.out_dim,), jnp.float32),
            "patch_center": jnp.zeros((m.patch_out_dim if m.separate_head else m.out_dim,), jnp.float32)}

  def loss(model, online, target, inputs):
    axis = inputs.axis_name
    views = list(inputs.views)
    crop_masks = masks(inputs.keys, m, grid, axis)
    picks = [masking.masked_first(mask, scored) for mask in crop_masks]
    weights = [masking.at_tokens(mask, p) for mask, p in zip(crop_masks, picks)]     # [n, S]: 1 if masked
    drop_keys = [base.stream(inputs.keys, _DROP_STREAM + v) for v in range(len(views))]
    outs = model.apply({"params": online.params}, views, crop_masks, picks, drop_keys, method=student_outputs)
    teacher = [teacher_outputs(model, target.params, views[v], picks[v]) for v in range(2)]
    temperature = dino.teacher_temperature(inputs.step, m)
    state = inputs.method_state
    if m.centering == "sinkhorn":
      cls_targets = ibot.sinkhorn_over_views([t.cls_logits for t in teacher], temperature, axis_name=axis)
      patch_targets = ibot.sinkhorn_over_views([t.patch_logits for t in teacher], temperature, weights,
                                               axis_name=axis)
    else:
      cls_targets = [losses.centred_softmax(t.cls_logits, state["center"], temperature) for t in teacher]
      patch_targets = [losses.centred_softmax(t.patch_logits, state["patch_center"], temperature) for t in teacher]
    cls_loss = losses.distillation_loss([o.cls_logits for o in outs], cls_targets, m.student_temperature, axis)
    patch_loss = sum(losses.ibot_patch_loss(outs[v].patch_logits, patch_targets[v], weights[v],
                                            m.student_temperature, axis) for v in range(2)) / 2
    koleo = sum(losses.koleo_loss(outs[v].cls, axis_name=axis, group_size=m.group_size) for v in range(2))
    value = m.cls_weight * cls_loss + m.patch_weight * patch_loss + m.koleo_weight * koleo
    metrics = {"cls_loss": cls_loss, "patch_loss": patch_loss, "koleo": koleo,
               "teacher_temperature": temperature, "masked_share": jnp.mean(jnp.stack(crop_masks))}
    gram_params = None
    if m.gram_weight > 0:
      gram_params = gram_teacher(target.params["encoder"], state["gram_encoder"], inputs.step, m)
      anchors = [model.encoder.apply({"params": gram_params}, views[v], method=ViT.tokens).patches for v in range(2)]
      gram = sum(losses.gram_loss(outs[v].patches, anchors[v], m.gram_normalize, m.gram_remove_negative, axis)
                 for v in range(2)) / 2          # the official loss flattens both crops into one batch
      value = value + m.gram_weight * (inputs.step >= m.gram_start) * gram
      metrics["gram_loss"] = gram
    metrics["loss"] = value
    return base.LossOutput(value, metrics, online.batch_stats, [outs[0].features, outs[1].features],
                           ([t.cls_logits for t in teacher], [t.patch_logits for t in teacher], weights,
                            gram_params))

  def update_state(method_state, state_inputs, step, axis_name):
    cls_logits, patch_logits, weights, gram_params = state_inputs     # the teacher's, on the two global crops
    patch_mean = masked_mean(patch_logits, weights, axis_name)
    m_patch = m.center_momentum
    new = {"center": losses.dino_center(method_state["center"], cls_logits, m.center_momentum, axis_name),
           "patch_center": m_patch * method_state["patch_center"] + (1.0 - m_patch) * patch_mean}
    if gram_params is not None:
      new["gram_encoder"] = gram_params
    return new

  def fill_state(method_state, params):
    """The Gram teacher's slot: a copy of the encoder (replaced by the EMA teacher at ``gram_start``)."""
    return dict(method_state, gram_encoder=jax.tree.map(jnp.copy, params["encoder"]))

  parts = ("encoder", "projector") + (("patch_projector",) if m.separate_head else ())
  return base.Method(name="dinov2", make_model=make_model, recipes=dino.recipes, loss=loss,
                     ema=ema_schedule(m.base_momentum), ema_parts=parts, init_state=init_state,
                     update_state=update_state, drop_path=True,
                     fill_state=fill_state if m.gram_weight > 0 else None)


# DINOv3's Gram anchoring, off (weight 0); the rest as ``dinov3_vit7b16_gram_anchor.yaml``: a teacher refreshed
# every 10,000 iterations, at most 3 times, normalised features, negatives kept.
GRAM_DEFAULTS = {"gram_weight": 0.0, "gram_start": 0, "gram_update_start": 0, "gram_update_every": 10000,
                 "gram_max_updates": 3, "gram_normalize": True, "gram_remove_negative": "none"}


def defaults():
  """``ssl_default_config.yaml`` with the ViT-L/14 recipe's heads (``vitl14.yaml``): separate DINO and iBOT
  heads (2048-2048 then a 384 bottleneck and 131,072 prototypes, norms learned), student T 0.1, teacher T 0.04
  -> 0.07 over 30 official epochs of 1,250 iterations, a new value every iteration, Sinkhorn-Knopp targets,
  loss weights 1 (DINO), 1 (iBOT) and 0.1 (KoLeo), half the global crops masked 10-50% in blocks of at least 4
  patches, EMA 0.994 -> 1. ``group_size`` 0: KoLeo and the mask shares over the global batch (the configs set
  the official per-GPU batch)."""
  return {"proj_hidden_dims": (2048, 2048), "bottleneck_dim": 384, "out_dim": 131072, "separate_head": True,
          "patch_bottleneck_dim": 384, "patch_out_dim": 131072, "norm_last_layer": False,
          "student_temperature": 0.1, "warmup_teacher_temperature": 0.04, "teacher_temperature": 0.07,
          "teacher_temperature_warmup_steps": 37500, "teacher_temperature_hold_steps": 1, **dino.WARMUP_IN_EPOCHS,
          "centering": "sinkhorn", "center_momentum": 0.9, "cls_weight": 1.0, "patch_weight": 1.0,
          "koleo_weight": 0.1, "mask_probability": 0.5, "mask_ratio_range": (0.1, 0.5), "mask_min_aspect": 0.3,
          "mask_min_patches": 4, "group_size": 0, "base_momentum": 0.994,
          **GRAM_DEFAULTS}



def check(config) -> None:
  m = config.method
  if not config.model.encoder.startswith("vit"):
    config_checks.fail("model.encoder", config.model.encoder, "DINOv2 masks patch tokens: use a ViT (vit_*)")
  if not config.model.class_token:
    config_checks.fail("model.class_token", config.model.class_token, "DINOv2 distils the class token: keep it")
  config_checks.widths(config, "method.proj_hidden_dims")
  for field in ("bottleneck_dim", "out_dim", "patch_bottleneck_dim", "patch_out_dim"):
    config_checks.positive_int(config, f"method.{field}")
  if not m.separate_head and m.out_dim != m.patch_out_dim:
    config_checks.fail("method.patch_out_dim", m.patch_out_dim,
                       f"a shared head scores both token kinds: must equal method.out_dim ({m.out_dim})")
  for field in ("student_temperature", "warmup_teacher_temperature", "teacher_temperature"):
    config_checks.temperature(config, f"method.{field}")
  dino.check_warmup(config)
  config_checks.in_range(config, "method.center_momentum", 0.0, 1.0, closed_high=False)
  for field in ("cls_weight", "patch_weight", "koleo_weight"):
    config_checks.in_range(config, f"method.{field}", 0.0, float("inf"), closed_high=False)
  config_checks.in_range(config, "method.mask_probability", 0.0, 1.0)
  low, high = tuple(m.mask_ratio_range) if len(tuple(m.mask_ratio_range)) == 2 else (-1.0, -1.0)
  if not 0.0 <= low <= high < 1.0:
    config_checks.fail("method.mask_ratio_range", tuple(m.mask_ratio_range),
                       "needs (low, high) with 0 <= low <= high < 1 (DINOv2: (0.1, 0.5))")
  config_checks.in_range(config, "method.mask_min_aspect", 1e-3, 1.0)
  config_checks.positive_int(config, "method.mask_min_patches")
  config_checks.non_negative_int(config, "method.group_size")
  if m.centering not in CENTERINGS:
    config_checks.fail("method.centering", m.centering, f"must be one of {CENTERINGS}")
  config_checks.in_range(config, "method.gram_weight", 0.0, float("inf"), closed_high=False)
  for field in ("gram_start", "gram_update_start", "gram_update_every", "gram_max_updates"):
    config_checks.non_negative_int(config, f"method.{field}")
  if m.gram_remove_negative not in GRAM_NEGATIVES:
    config_checks.fail("method.gram_remove_negative", m.gram_remove_negative, f"must be one of {GRAM_NEGATIVES}")
  check_momentum(config)


def check_devices(config, num_devices: int) -> None:
  """KoLeo's groups and the masks' groups must not straddle devices: each device's share a whole number of
  ``method.group_size`` groups."""
  base.check_group_size(config, num_devices)


def config_defaults() -> dict:
  """The ViT (the micro one, for the default 28 px images) with LayerScale 1e-5 and uniform drop path, and the
  official optimizer: AdamW, lr 0.004 x sqrt(batch / 1024) (``sqrt_wrt_1024``) to a minimum of 1e-6, weight
  decay 0.04 -> 0.4, gradients clipped to norm 3 per module, the patch embedding at 0.2 x the learning rate, and
  both heads' last layers at a learning rate of 0 for the first official epoch (1,250 iterations)."""
  return {"model.encoder": "vit_micro", "model.patch_size": 4, "model.layer_scale": 1e-5,
          "model.drop_path_uniform": True, "optim.name": "adamw", "optim.base_lr": 4e-3,
          "optim.lr_scaling": "sqrt_1024", "optim.min_lr": 1e-6, "optim.weight_decay": 0.04,
          "optim.weight_decay_end": 0.4, "optim.clip_grad_norm": 3.0, "optim.clip_mode": "per_group",
          "optim.clip_groups": clip_groups(), "optim.freeze_mode": "zero_lr",
          "optim.rules": freeze_last_layers(1250) + (("encoder/patch_embed/.*", 0.2),)}


def small(batch_size: int) -> dict:
  return {"method.proj_hidden_dims": (32,), "method.out_dim": 32, "method.patch_out_dim": 32,
          "method.bottleneck_dim": 8, "method.patch_bottleneck_dim": 8,
          "method.teacher_temperature_warmup_steps": 2, "optim.rules": freeze_last_layers(2) + (
              ("encoder/patch_embed/.*", 0.2),), "augment.num_local_crops": 2, "augment.local_size": 8}
