"""iBOT (Zhou et al. 2022, "iBOT: Image BERT Pre-Training with Online Tokenizer", arXiv:2111.07832; official
``main_ibot.py``), with DINOv2's options (Oquab et al. 2023, arXiv:2304.07193): the KoLeo regulariser and
Sinkhorn-Knopp centring of the teacher.

DINO's multi-crop self-distillation of the class token, plus masked image modelling on the two global crops: the
student sees each global crop with blockwise-masked patches replaced by a mask token and predicts, at those
patches, the EMA teacher's patch-token distribution on the unmasked crop. Two running centres (class and patch
tokens) are method state. Masks come from the per-example keys, so 8 devices give the same step as 1.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base, dino
from jaxssl.methods.base import check_momentum, ema_schedule
from jaxssl.models import DINOHead
from jaxssl.models.ibot import IBOTNetwork, student_outputs, teacher_outputs
from jaxssl.ops import losses, masking

_MASK_STREAM, _RATIO_STREAM, _DROP_STREAM = 10, 20, 30
CENTERINGS = ("center", "sinkhorn")
LAST_LAYERS = "(patch_)?" + dino.LAST_LAYER    # both heads' (official: every parameter named last_layer)


# The class token's and the patches' teacher temperatures warm up over the same steps as DINO's.
step_schedules = dino.step_schedules
steps_from_epochs = dino.steps_from_epochs


def freeze_last_layers(steps: int) -> tuple:
  """``optim.rules`` freezing both heads' last layers for the first ``steps`` steps."""
  return dino.freeze_last_layer(steps, LAST_LAYERS)


def masks_for(keys, view: int, grid: tuple[int, int], m) -> jnp.ndarray:
  """[N, gh * gw] blockwise masks of global view ``view`` (0 or 1), each image's share drawn as iBOT's
  ``pred_ratio`` / ``pred_ratio_var``."""
  ratios = masking.prediction_ratios(base.stream(keys, _RATIO_STREAM + view), tuple(m.pred_ratios),
                                     tuple(m.pred_ratio_vars))
  return masking.block_masks(base.stream(keys, _MASK_STREAM + view), grid, ratios, m.pred_min_aspect)


def view_masks(config, keys) -> list:
  """[N, L] per view, 1 where the student's patch is masked (and predicted), None for the local crops: for the
  pictures."""
  grid = (config.augment.size // config.model.patch_size,) * 2
  masks = [masks_for(keys, v, grid, config.method).astype(jnp.float32) for v in range(2)]
  return masks + [None] * config.augment.num_local_crops


def patch_temperature(step, m):
  """The patch tokens' teacher temperature, warmed up over the class token's warm-up steps (official)."""
  return dino.warmed_up(step, m.warmup_teacher_patch_temperature, m.teacher_patch_temperature,
                        m.teacher_temperature_warmup_steps, m.teacher_temperature_hold_steps)


def sinkhorn_over_views(logits: list[jnp.ndarray], temperature, weights: list[jnp.ndarray] | None = None,
                        axis_name=None) -> list[jnp.ndarray]:
  """DINOv2's Sinkhorn-Knopp targets computed once over the tokens of all global views together, as the
  official ``get_teacher_output`` does (``dinov2/train/ssl_meta_arch.py``): the class tokens of both crops in
  one equipartition, and the masked patch tokens of every image of both crops in another (those with weight 0
  take no part), not one per view.

  Args:
    logits: G arrays [n, K] (class tokens) or [n, L, K] (patch tokens) of the teacher on the global views.
    weights: optional G arrays [n] or [n, L], 1 where a token takes part (the masked patches).

  Returns:
    G arrays of the targets, each of its logits' shape.
  """
  k = logits[0].shape[-1]
  flat = jnp.concatenate([x.reshape(-1, k) for x in logits])
  w = None if weights is None else jnp.concatenate([x.reshape(-1) for x in weights])
  targets = losses.sinkhorn_targets(flat, temperature, weights=w, axis_name=axis_name)
  sizes = [x.size // k for x in logits]
  pieces = jnp.split(targets, [sum(sizes[:i + 1]) for i in range(len(sizes) - 1)])
  return [piece.reshape(x.shape) for piece, x in zip(pieces, logits)]


def make(config) -> base.Method:
  m = config.method
  grid = (config.augment.size // config.model.patch_size,) * 2
  # The student's patch head scores only the tokens the loss reads: each image's masked patches, padded to the
  # most a mask can hold (25 of 49 at iBOT's shares); the teacher scores all of them, for the patch centre.
  scored = masking.most_block_masked(grid, tuple(m.pred_ratios), tuple(m.pred_ratio_vars))

  def make_model(config, encoder, axis_name, dtype):
    head = lambda out_dim: DINOHead(hidden_dims=tuple(m.proj_hidden_dims), bottleneck_dim=m.bottleneck_dim,
                                    out_dim=out_dim, dtype=dtype)
    return IBOTNetwork(encoder, head(m.out_dim), None if m.shared_head else head(m.patch_out_dim))

  def init_state(key, config):
    return {"center": jnp.zeros((m.out_dim,), jnp.float32),
            "patch_center": jnp.zeros((m.patch_out_dim,), jnp.float32)}

  def loss(model, online, target, inputs):
    axis = inputs.axis_name
    views = list(inputs.views)
    masks = [masks_for(inputs.keys, v, grid, m) for v in range(2)]
    picks = [masking.masked_first(mask, scored) for mask in masks]
    drop_keys = [base.stream(inputs.keys, _DROP_STREAM + v) for v in range(len(views))]
    outs = model.apply({"params": online.params}, views, masks, picks, drop_keys, method=student_outputs)
    teacher = [teacher_outputs(model, target.params, views[v]) for v in range(2)]
    temperature, patch_temp = dino.teacher_temperature(inputs.step, m), patch_temperature(inputs.step, m)
    state = inputs.method_state
    if m.centering == "sinkhorn":
      cls_targets = sinkhorn_over_views([t.cls_logits for t in teacher], temperature, axis_name=axis)
      patch_targets = sinkhorn_over_views([t.patch_logits for t in teacher], patch_temp, masks, axis_name=axis)
    else:
      cls_targets = [losses.centred_softmax(t.cls_logits, state["center"], temperature) for t in teacher]
      patch_targets = [losses.centred_softmax(t.patch_logits, state["patch_center"], patch_temp) for t in teacher]
    cls_loss = losses.distillation_loss([o.cls_logits for o in outs], cls_targets, m.student_temperature, axis)
    patch_loss = sum(losses.ibot_patch_loss(outs[v].patch_logits, masking.at_tokens(patch_targets[v], picks[v]),
                                            masking.at_tokens(masks[v], picks[v]), m.student_temperature, axis)
                     for v in range(2)) / 2
    value = m.cls_weight * cls_loss + m.patch_weight * patch_loss
    metrics = {"cls_loss": cls_loss, "patch_loss": patch_loss, "teacher_temperature": temperature,
               "masked_share": jnp.mean(jnp.stack(masks))}
    if m.koleo_weight > 0:
      koleo = sum(losses.koleo_loss(outs[v].cls, axis_name=axis) for v in range(2))
      value = value + m.koleo_weight * koleo
      metrics["koleo"] = koleo
    metrics["loss"] = value
    return base.LossOutput(value, metrics, online.batch_stats, [outs[0].cls, outs[1].cls],
                           ([t.cls_logits for t in teacher], [t.patch_logits for t in teacher]))

  def update_state(method_state, state_inputs, step, axis_name):
    cls_logits, patch_logits = state_inputs   # the teacher's, on the two global views
    return {"center": losses.dino_center(method_state["center"], cls_logits, m.center_momentum, axis_name),
            "patch_center": losses.dino_center(method_state["patch_center"], [p.mean(axis=1) for p in patch_logits],
                                               m.patch_center_momentum, axis_name)}

  parts = ("encoder", "projector") + (() if m.shared_head else ("patch_projector",))
  return base.Method(name="ibot", make_model=make_model, recipes=dino.recipes, loss=loss,
                     ema=ema_schedule(m.base_momentum), ema_parts=parts, init_state=init_state,
                     update_state=update_state, drop_path=True)


def defaults():
  """The official ViT-S/16 recipe (``main_ibot.py`` and the repository's ViT-S/16 command): one head shared by
  the class and patch tokens (2048-2048-256, then 8,192 outputs), student T 0.1, teacher T 0.04 -> 0.07 for both
  token kinds over 30 epochs, one value per epoch (here in steps at batch 1024), centre momenta 0.9, loss weights
  1 and 1, half the global crops unmasked and the others masked 10-50% in blocks of aspect 0.3-3.3, EMA 0.996 ->
  1. DINOv2's options off: KoLeo weight 0 (DINOv2: 0.1), ``centering`` ``center`` (DINOv2: ``sinkhorn``)."""
  return {"proj_hidden_dims": (2048, 2048), "bottleneck_dim": 256, "out_dim": 8192, "patch_out_dim": 8192,
          "shared_head": True, "student_temperature": 0.1, "warmup_teacher_temperature": 0.04,
          "teacher_temperature": 0.07, "warmup_teacher_patch_temperature": 0.04, "teacher_patch_temperature": 0.07,
          "teacher_temperature_warmup_steps": 37530, "teacher_temperature_hold_steps": 1251,
          **dino.WARMUP_IN_EPOCHS, "center_momentum": 0.9, "patch_center_momentum": 0.9,
          "cls_weight": 1.0, "patch_weight": 1.0, "pred_ratios": (0.0, 0.3), "pred_ratio_vars": (0.0, 0.2),
          "pred_min_aspect": 0.3, "centering": "center", "koleo_weight": 0.0, "base_momentum": 0.996}


def check(config) -> None:
  m = config.method
  if not config.model.encoder.startswith("vit"):
    config_checks.fail("model.encoder", config.model.encoder, "iBOT masks patch tokens: use a ViT (vit_*)")
  if not config.model.class_token:
    config_checks.fail("model.class_token", config.model.class_token, "iBOT distils the class token: keep it")
  config_checks.widths(config, "method.proj_hidden_dims")
  for field in ("bottleneck_dim", "out_dim", "patch_out_dim"):
    config_checks.positive_int(config, f"method.{field}")
  if m.shared_head and m.out_dim != m.patch_out_dim:
    config_checks.fail("method.patch_out_dim", m.patch_out_dim,
                       f"a shared head scores both token kinds: must equal method.out_dim ({m.out_dim})")
  for field in ("student_temperature", "warmup_teacher_temperature", "teacher_temperature",
                "warmup_teacher_patch_temperature", "teacher_patch_temperature"):
    config_checks.temperature(config, f"method.{field}")
  dino.check_warmup(config)
  for field in ("center_momentum", "patch_center_momentum"):
    config_checks.in_range(config, f"method.{field}", 0.0, 1.0, closed_high=False)
  for field in ("cls_weight", "patch_weight", "koleo_weight"):
    config_checks.in_range(config, f"method.{field}", 0.0, float("inf"), closed_high=False)
  ratios, spreads = tuple(m.pred_ratios), tuple(m.pred_ratio_vars)
  if not ratios or len(ratios) != len(spreads):
    config_checks.fail("method.pred_ratio_vars", spreads, f"needs one spread per method.pred_ratios {ratios}")
  for r, v in zip(ratios, spreads):
    if not (0.0 <= v <= r and r + v < 1.0):
      config_checks.fail("method.pred_ratios", ratios, "each share r with its spread v needs 0 <= v <= r and "
                         f"r + v < 1 (got r={r}, v={v})")
  config_checks.in_range(config, "method.pred_min_aspect", 1e-3, 1.0)
  if m.centering not in CENTERINGS:
    config_checks.fail("method.centering", m.centering, f"must be one of {CENTERINGS}")
  check_momentum(config)


def config_defaults() -> dict:
  """A ViT (the micro one, for the default 28 px images) and the official optimizer: AdamW lr 0.0005 x batch /
  256 to a minimum of 1e-6, weight decay 0.04 -> 0.4, each parameter's gradient clipped to norm 3, both last
  layers frozen for the first epoch (1,251 steps at batch 1024 on ImageNet)."""
  return {"model.encoder": "vit_micro", "model.patch_size": 4, "optim.name": "adamw", "optim.base_lr": 5e-4,
          "optim.min_lr": 1e-6, "optim.weight_decay": 0.04, "optim.weight_decay_end": 0.4,
          "optim.clip_grad_norm": 3.0, "optim.clip_mode": "per_parameter", "optim.rules": freeze_last_layers(1251)}


def small(batch_size: int) -> dict:
  return {"method.proj_hidden_dims": (32,), "method.out_dim": 32, "method.patch_out_dim": 32,
          "method.bottleneck_dim": 8, "method.teacher_temperature_warmup_steps": 2,
          "method.teacher_temperature_hold_steps": 1,
          "optim.rules": freeze_last_layers(2), "augment.num_local_crops": 2, "augment.local_size": 8}
