"""Supervised classification of the train split's labels: full fine-tuning of a pretrained encoder, or the same
encoder trained from scratch (the baseline that shows what pretraining buys).

encoder -> linear head, cross-entropy on label-smoothed targets, RandAugment (``jaxssl.ops.randaugment``, in the
view recipe), random erasing, mixup / cutmix (``jaxssl.ops.mixing``: one lambda per batch, or per example), drop
path for ViTs; the optimizer's layer-wise decay and rules (``jaxssl.ops.optim``) do the rest of MAE's fine-tuning
recipe (He et al. 2022, arXiv:2111.06377, ``main_finetune.py``). With ``method.init=pretrained`` the encoder
starts from the run in ``method.pretrained`` (``python -m jaxssl.finetune`` sets these; the trainer's warm start,
``jaxssl.runs.pretrained_run``, reads it) or from ``model.init_from``'s weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base
from jaxssl.models import Classifier
from jaxssl.ops import augment, mixing

_MIX_STREAM, _DROP_STREAM, _ERASE_STREAM = 0, 1, 2
_MIX_BATCH_TAG = 0x313A
INITS = ("pretrained", "scratch")
# The head reads only the encoder's pooled features, so a ViT may pool as MAE fine-tunes (model.pool="global").
GLOBAL_POOL = True


def classes(config) -> int:
  """The classes the head predicts: ``model.apply(variables, images, train=False)`` returns logits [N, classes];
  the trainer refuses data with another number, and evaluation scores these logits (top-1 / top-5)."""
  return config.method.num_classes


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

  return base.Method(name="classifier", make_model=make_model, recipes=recipes, loss=loss,
                     needs_labels=True, drop_path=True,
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
  return {"eval.knn_at_init": False, "eval.online_probe": False, "eval.evaluators": ("top1",)}


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


def check_devices(config, num_devices: int) -> None:
  """Mixup and cutmix pair each example with its neighbour on the same device: each device's share is even."""
  m = config.method
  if (m.mixup_alpha > 0 or m.cutmix_alpha > 0) and m.mixup_prob > 0:
    local = config.train.batch_size // max(num_devices, 1)
    if local % 2:
      config_checks.fail("train.batch_size", config.train.batch_size, f"mixup/cutmix pair neighbouring examples: "
                         f"each device's share ({local} on {num_devices} devices) must be even")
