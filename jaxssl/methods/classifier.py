"""Supervised classification of the train split's labels: full fine-tuning of a pretrained encoder, or the same
encoder trained from scratch (the baseline that shows what pretraining buys).

encoder -> linear head, cross-entropy on label-smoothed targets, RandAugment (``jaxssl.randaugment``, in the view
recipe), random erasing, mixup / cutmix (``jaxssl.mixing``: one lambda per batch, or per example), drop path for
ViTs; the optimizer's layer-wise decay and rules (``jaxssl.optim``) do the rest of MAE's fine-tuning recipe (He et al. 2022, arXiv:2111.06377, ``main_finetune.py``). With ``method.init=pretrained``
the encoder starts from the run in ``method.pretrained`` (``python -m jaxssl.finetune`` sets these).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxssl import augment, checkpoint, config_checks, mixing
from jaxssl.checkpoint import CheckpointError
from jaxssl.methods import base
from jaxssl.models import Classifier
from jaxssl.models.vit import to_block_layout

_MIX_STREAM, _DROP_STREAM, _ERASE_STREAM = 0, 1, 2
_MIX_BATCH_TAG = 0x313A
INITS = ("pretrained", "scratch")


def make(config) -> base.Method:
  m = config.method
  # The batch mode's key of each step: from the seed and the step only, so every device draws the same one.
  batch_mix_key = jax.random.fold_in(jax.random.key(config.seed), _MIX_BATCH_TAG)

  def mix_keys(inputs):
    if m.mixup_mode == "batch":
      return jax.random.fold_in(batch_mix_key, inputs.step)
    return base.stream(inputs.keys, _MIX_STREAM)

  def make_model(config, encoder, axis_name, dtype):
    return Classifier(encoder, m.num_classes, m.head_init_std, dtype=dtype)

  def loss(model, online, target, inputs):
    targets = mixing.smoothed_one_hot(inputs.labels, m.num_classes, m.label_smoothing)
    images = inputs.views[0]
    if m.erase_prob > 0:                          # timm's order: erase each image, then mix the batch
      erase = lambda k, x: augment.random_erasing(k, x, m.erase_prob)
      images = jax.vmap(erase)(base.stream(inputs.keys, _ERASE_STREAM), images)
    images, targets = mixing.mix(mix_keys(inputs), images, targets, m.mixup_alpha, m.cutmix_alpha,
                                 m.mixup_switch_prob, m.mixup_prob)
    logits, batch_stats = base.apply_train(model, online, images, train=True,
                                           drop_keys=base.stream(inputs.keys, _DROP_STREAM))
    value = -jnp.mean(jnp.sum(targets * jax.nn.log_softmax(logits), axis=-1))
    top1 = jnp.mean((jnp.argmax(logits, -1) == inputs.labels).astype(jnp.float32))
    return base.LossOutput(value, {"loss": value, "train_top1": top1}, batch_stats)

  warm_start = None
  if m.init == "pretrained" and m.pretrained:   # else model.init_from names imported weights
    warm_start = lambda variables: pretrained_encoder(variables, m.pretrained, m.pretrained_step)

  return base.Method(name="classifier", make_model=make_model, recipes=recipes, loss=loss,
                     needs_labels=True, drop_path=True, global_pool=True, num_classes=m.num_classes,
                     warm_start=warm_start,
                     # mixup / cutmix pair each image with another of the batch
                     per_example_loss=m.mixup_alpha == 0 and m.cutmix_alpha == 0,
                     no_online_probe="the classifier's own head is trained on the labels; its test top-1 is "
                     "reported instead")


RANDAUGMENT_PLACES = ("auto", "device")


def recipes(config) -> tuple[augment.ViewRecipe]:
  """One view: a random resized crop and a flip, then RandAugment when ``augment.randaugment_layers`` > 0
  (filling with the dataset's mean, as timm's ``img_mean``); nothing else photometric. With
  ``augment.randaugment_on="auto"`` the flip and RandAugment go where the crop is taken: in the host workers
  (PIL, ``jaxssl.data.host_randaugment``) for ImageNet-style data, on the device for small datasets."""
  a = config.augment
  return (augment.ViewRecipe(**base.recipe_kwargs(config), jitter_prob=0.0, grayscale_prob=0.0,
                             randaugment_layers=a.randaugment_layers, randaugment_magnitude=a.randaugment_magnitude,
                             randaugment_magnitude_std=a.randaugment_magnitude_std,
                             randaugment_fill=tuple(config.data.mean),
                             randaugment_on_host=a.randaugment_on == "auto"),)


def pretrained_encoder(variables: base.Variables, workdir: str, step: int) -> base.Variables:
  """``variables`` with the encoder's parameters and BatchNorm statistics replaced by those of the run in
  ``workdir`` at checkpoint ``step`` (-1: the latest). Only those are read from the checkpoint, so a run saved
  with another optimizer or method state still serves. Raises CheckpointError (one line) when the run cannot
  be read or its encoder is another architecture."""
  from jaxssl.restore import load_config, open_checkpoints

  load_config(workdir, "config.method.pretrained")   # a run directory (CheckpointError: not one, or damaged)
  checkpointer = open_checkpoints(workdir, "config.method.pretrained")
  try:
    steps = checkpointer.steps()
    if step >= 0 and step not in steps:
      raise CheckpointError(f"config.method.pretrained_step={step} (--step): {checkpointer.directory} has no "
                            f"checkpoint of that step (it has: {', '.join(map(str, steps)) or 'none'})")
    parts, saved_step = checkpointer.restore_subtrees(("params/encoder", "batch_stats/encoder"),
                                                      None if step < 0 else step)
  finally:
    checkpointer.close()
  where = f"config.method.pretrained={workdir!r} (step {saved_step})"
  params, stats = parts.get("params/encoder"), parts.get("batch_stats/encoder", {})
  if params is None:
    raise CheckpointError(f"{where}: its model has no 'encoder' parameters")
  params, restacked = to_block_layout(params, variables.params["encoder"])
  params, fresh_fc_norm = for_global_pool(params, variables.params["encoder"])
  for name, mine, theirs in (("parameters", variables.params["encoder"], params),
                             ("BatchNorm statistics", variables.batch_stats.get("encoder", {}), stats)):
    difference = checkpoint.first_difference(checkpoint.shapes_by_path(theirs), checkpoint.shapes_by_path(mine))
    if difference:
      raise CheckpointError(f"{where}: its encoder's {name} do not fit this config's encoder ({difference}); "
                            "fine-tune with the pretrained run's model fields")
  notes = [f"its blocks {'stacked for' if 'blocks' in params else 'unstacked from'} model.scan_layers"] * restacked
  notes += ["its final norm left out, fc_norm new: model.pool='global'"] * fresh_fc_norm
  print(f"fine-tuning: encoder from {workdir} at step {saved_step}"
        + (f" ({'; '.join(notes)})" if notes else ""), flush=True)
  # On the host, in the fresh trees' structure (the shapes were just compared path by path).
  as_fresh = lambda fresh, saved: jax.tree.map(lambda _, x: np.asarray(x), fresh, saved)
  new_params = {**variables.params, "encoder": as_fresh(variables.params["encoder"], params)}
  new_stats = dict(variables.batch_stats)
  if stats:
    new_stats["encoder"] = as_fresh(variables.batch_stats["encoder"], stats)
  return base.Variables(new_params, new_stats)


def for_global_pool(saved: dict, fresh: dict) -> tuple[dict, bool]:
  """A pretrained ViT encoder's parameters ``saved`` fitted to a fresh encoder with ``model.pool="global"``
  (``fc_norm`` after the mean, no final ``norm``), as MAE's ``main_finetune.py`` loads them: the checkpoint's
  ``norm`` is left out and ``fc_norm`` keeps its fresh initialisation (the missing keys it asserts). Returns
  (the parameters to load, whether that was done); other trees are returned as they are."""
  if "fc_norm" in fresh and "norm" not in fresh and "norm" in saved and "fc_norm" not in saved:
    return {**{k: v for k, v in saved.items() if k != "norm"}, "fc_norm": fresh["fc_norm"]}, True
  return saved, False


def defaults():
  """MAE's fine-tuning recipe (``main_finetune.py``, FINETUNE.md): label smoothing 0.1, mixup 0.8, cutmix 1.0
  (switch probability 0.5, every batch mixed, one lambda per batch: ``--mixup_mode batch``), random erasing
  0.25, the head initialised with std 2e-5; the number of classes of the default data (Fashion-MNIST: 10).
  RandAugment is ``augment.randaugment_layers``."""
  return {"num_classes": 10, "label_smoothing": 0.1, "mixup_alpha": 0.8, "cutmix_alpha": 1.0,
          "mixup_switch_prob": 0.5, "mixup_prob": 1.0, "mixup_mode": "batch", "erase_prob": 0.25,
          "head_init_std": 2e-5,
          "init": "scratch", "pretrained": "", "pretrained_step": -1}


def config_defaults() -> dict:
  """Evaluation is the classifier's own test top-1 (no kNN at initialisation, no online probe)."""
  return {"eval.knn_at_init": False, "eval.online_probe": False}


def check(config) -> None:
  m = config.method
  config_checks.positive_int(config, "method.num_classes")
  config_checks.in_range(config, "method.label_smoothing", 0.0, 1.0, closed_high=False)
  for field in ("mixup_alpha", "cutmix_alpha"):
    if not m[field] >= 0:
      config_checks.fail(f"method.{field}", m[field], "must be non-negative (0: off)")
  config_checks.in_range(config, "method.mixup_switch_prob", 0.0, 1.0)
  config_checks.in_range(config, "method.mixup_prob", 0.0, 1.0)
  if m.mixup_mode not in mixing.MODES:
    config_checks.fail("method.mixup_mode", m.mixup_mode, f"use one of {', '.join(map(repr, mixing.MODES))} "
                       "(timm's: one lambda per batch, or per example)")
  config_checks.in_range(config, "method.erase_prob", 0.0, 1.0)
  a = config.augment
  config_checks.non_negative_int(config, "augment.randaugment_layers")
  config_checks.in_range(config, "augment.randaugment_magnitude", 0.0, 10.0)
  if not a.randaugment_magnitude_std >= 0:
    config_checks.fail("augment.randaugment_magnitude_std", a.randaugment_magnitude_std, "must be non-negative")
  if a.randaugment_on not in RANDAUGMENT_PLACES:
    config_checks.fail("augment.randaugment_on", a.randaugment_on,
                       f"use one of {', '.join(map(repr, RANDAUGMENT_PLACES))} (auto: with the crops)")
  from jaxssl import data

  on_device = a.randaugment_on == "device" or not data.crops_on_host(config.data)
  if a.randaugment_layers > 0 and on_device and a.interpolation != "bilinear":
    config_checks.fail("augment.interpolation", a.interpolation,
                       "RandAugment on the device warps bilinearly only; crop on the host (data.crop_on) with "
                       "augment.randaugment_on='auto' for timm's bicubic warps, or use 'bilinear'")
  if not m.head_init_std >= 0:
    config_checks.fail("method.head_init_std", m.head_init_std, "must be non-negative (0: a zero head)")
  if m.init not in INITS:
    config_checks.fail("method.init", m.init, f"use one of {', '.join(map(repr, INITS))}")
  if m.init == "pretrained" and not m.pretrained and not config.model.init_from:
    config_checks.fail("method.pretrained", m.pretrained, "method.init='pretrained' needs the pretrained run's "
                       "workdir or weights (python -m jaxssl.finetune --pretrained DIR)")
  if m.init == "scratch" and config.model.init_from:
    config_checks.fail("model.init_from", config.model.init_from, "method.init='scratch' trains the encoder from "
                       "its random initialisation: drop one")
  if isinstance(m.pretrained_step, bool) or not isinstance(m.pretrained_step, int) or m.pretrained_step < -1:
    config_checks.fail("method.pretrained_step", m.pretrained_step, "must be a checkpoint step, or -1 for the latest")
  if (m.mixup_alpha > 0 or m.cutmix_alpha > 0) and m.mixup_prob > 0:
    local = config.train.batch_size // max(jax.device_count(), 1)
    if local % 2:
      config_checks.fail("train.batch_size", config.train.batch_size, f"mixup/cutmix pair neighbouring examples: "
                         f"each device's share ({local} on {jax.device_count()} devices) must be even")


def small(batch_size: int) -> dict:
  return {}
