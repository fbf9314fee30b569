"""Config validation, once at start: every error is one line naming the field and its value.

This module holds the schema's sections and the rules across them; each method checks its own fields
(``check(config)`` in its module, through ``jaxssl.tasks.check``), and a knob of the shared sections that the
chosen method's view recipes do not read is refused when set away from its default.
"""

from __future__ import annotations

from typing import Any

import ml_collections

from jaxssl import data, tasks
from jaxssl.common import config_checks
from jaxssl.common.config_checks import ConfigError, fail as _fail  # noqa: F401  (ConfigError: the public name)
from jaxssl.models import ENCODERS
from jaxssl.models.vit import INITS, MLPS, ViT
from jaxssl.ops import optim
from jaxssl.ops.augment import INTERPOLATIONS
from jaxssl.schema import defaults

POOLS = ("cls", "mean", "global")
# model.* fields only a ViT reads; a ResNet run must leave them at the ViT's defaults.
VIT_ONLY = ("pos_embed", "weight_init", "pool", "drop_path_rate", "scan_layers", "class_token", "num_registers",
            "layer_scale", "mlp")
from jaxssl.models.resnet import CONV_IMPLEMENTATIONS, PADDINGS


def _unknown_key(config, reference, prefix: str = "") -> str | None:
  for key in config.keys():
    if key not in reference:
      return prefix + key
    if isinstance(config[key], ml_collections.ConfigDict) and isinstance(reference[key], ml_collections.ConfigDict):
      found = _unknown_key(config[key], reference[key], f"{prefix}{key}.")
      if found:
        return found
  return None


def _leaves(config: ml_collections.ConfigDict, prefix: str = ""):
  """(dotted field name, value) of every non-section field."""
  for key, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield prefix + key, value


def _couples_the_batch(config: ml_collections.ConfigDict) -> str:
  """Why the step needs at least two examples at a time (a loss over the batch, BatchNorm); '' if it does not."""
  if not tasks.get(config).per_example_loss:
    return (f"method.name={config.method.name!r} has a loss that couples the examples of a batch (negatives, "
            "batch statistics, a centre, a queue or mixed pairs)")
  if not config.model.encoder.startswith("vit"):
    return f"model.encoder={config.model.encoder!r} has BatchNorm, whose statistics couple the batch"
  return ""


def _check_small_batch(config: ml_collections.ConfigDict) -> None:
  """One example at a time has no batch statistics, variances or negatives: refused where the step needs them
  (rather than the non-finite gradients it would give)."""
  micro = config.train.batch_size // max(1, config.train.grad_accum_steps)
  why = _couples_the_batch(config) if micro < 2 else ""
  if why:
    field, value = (("train.batch_size", config.train.batch_size) if config.train.grad_accum_steps == 1 else
                    ("train.grad_accum_steps", config.train.grad_accum_steps))
    _fail(field, value, f"gives {micro} example per step, but {why}: use at least 2 (in practice hundreds)")


def _check_accumulation(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Gradient accumulation: k micro-batches per device, and only where it computes the same step (a mean of
  per-example terms, no BatchNorm) unless the user accepts the changed recipe."""
  config_checks.positive_int(config, "train.grad_accum_steps")
  k = config.train.grad_accum_steps
  if k == 1:
    return
  per_device = config.train.batch_size // num_devices
  if per_device % k:
    _fail("train.grad_accum_steps", k, f"must divide the batch per device, {per_device} (train.batch_size="
          f"{config.train.batch_size} over {num_devices} devices)")
  if config.train.allow_coupled_accumulation:
    return
  why = _couples_the_batch(config)
  if not why:
    return
  _fail("train.grad_accum_steps", k, f"{why}, so micro-batches change the recipe; set "
        "train.allow_coupled_accumulation=True to accept that")


def _check_randaugment_warps(config: ml_collections.ConfigDict) -> None:
  """RandAugment on the device (where the data's crops are taken there) warps bilinearly only."""
  a = config.augment
  on_device = a.randaugment_on == "device" or not data.crops_on_host(config.data)
  if a.randaugment_layers > 0 and on_device and a.interpolation != "bilinear":
    _fail("augment.interpolation", a.interpolation, "RandAugment on the device warps bilinearly only; crop on the "
          "host (data.crop_on) with augment.randaugment_on='auto' for timm's bicubic warps, or use 'bilinear'")


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ConfigError for the first bad field."""
  if config.method.name not in tasks.names():
    _fail("method.name", config.method.name, f"unknown method; known: {', '.join(tasks.names())}")
  unknown = _unknown_key(config, defaults.get_config(config.method.name))
  if unknown:
    value = config
    for part in unknown.split("."):
      value = value[part]
    _fail(unknown, value, "unknown config key (a typo? the schema is jaxssl/schema/defaults.py)")
  for field, value in _leaves(config):
    if not config_checks.finite(value):
      _fail(field, value, "must be finite")
  if not isinstance(config.seed, int) or not 0 <= config.seed < 2**31:
    _fail("seed", config.seed, "must be an integer in [0, 2**31)")
  if config.model.encoder not in ENCODERS:
    _fail("model.encoder", config.model.encoder, f"unknown encoder; known: {', '.join(sorted(ENCODERS))}")
  if config.model.encoder.startswith("vit"):
    a = config.augment
    sizes = [("augment.size", a.size)] + ([("augment.local_size", a.local_size)] if a.num_local_crops else [])
    for field, size in sizes:
      if config.model.patch_size <= 0 or size % config.model.patch_size:
        _fail("model.patch_size", config.model.patch_size, f"must divide {field}={size} (a ViT cuts crops into "
              "patches)")
  for field, choices in (("pos_embed", ("learned", "sincos")), ("weight_init", INITS), ("pool", POOLS)):
    if config.model[field] not in choices:
      _fail(f"model.{field}", config.model[field], f"use one of {', '.join(map(repr, choices))}")
  if config.model.pool == "global" and not tasks.global_pool(config.method.name):
    _fail("model.pool", config.model.pool, f"MAE's global pool (no final norm on the tokens) is for fine-tuning; "
          f"method {config.method.name!r} reads the normed tokens: use 'cls' or 'mean'")
  config_checks.in_range(config, "model.drop_path_rate", 0.0, 1.0, closed_high=False)
  if not isinstance(config.model.class_token, bool):
    _fail("model.class_token", config.model.class_token, "must be True or False")
  if not config.model.class_token and config.model.pool == "cls":
    _fail("model.pool", config.model.pool, "there is no class token (model.class_token=False): use 'mean' or "
          "'global'")
  config_checks.non_negative_int(config, "model.num_registers")
  config_checks.in_range(config, "model.layer_scale", 0.0, 10.0)
  if config.model.mlp not in MLPS:
    _fail("model.mlp", config.model.mlp, f"use one of {', '.join(map(repr, MLPS))}")
  if config.model.stem not in ("cifar", "imagenet"):
    _fail("model.stem", config.model.stem, "use 'cifar' or 'imagenet'")
  conv_choices = ("auto", *CONV_IMPLEMENTATIONS)
  if config.model.conv not in conv_choices:
    _fail("model.conv", config.model.conv,
          f"use {', '.join(map(repr, conv_choices[:-1]))} or {conv_choices[-1]!r}")
  if config.model.compute_dtype not in ("float32", "bfloat16"):
    _fail("model.compute_dtype", config.model.compute_dtype, "use 'float32' or 'bfloat16'")

  batch = config.train.batch_size
  if not isinstance(batch, int) or batch <= 0:
    _fail("train.batch_size", batch, "must be a positive integer")
  if batch % num_devices:
    _fail("train.batch_size", batch, f"must be divisible by the number of devices ({num_devices})")
  if config.train.num_steps <= 0 and config.train.num_epochs <= 0:
    _fail("train.num_epochs", config.train.num_epochs, "must be positive when train.num_steps is not set")
  if config.train.checkpoint_every < 0:
    _fail("train.checkpoint_every", config.train.checkpoint_every, "must be non-negative (0: only at the end)")
  if config.train.keep_checkpoints <= 0:
    _fail("train.keep_checkpoints", config.train.keep_checkpoints, "must be positive")
  if config.train.log_every <= 0:
    _fail("train.log_every", config.train.log_every, "must be positive")
  _check_accumulation(config, num_devices)
  _check_small_batch(config)
  for field in ("fsdp", "fsdp_per_block"):
    if not isinstance(config.parallel[field], bool):
      _fail(f"parallel.{field}", config.parallel[field], "must be True or False")
  config_checks.positive_int(config, "parallel.fsdp_min_size")

  if config.optim.name not in ("lars", "sgd", "adamw"):
    _fail("optim.name", config.optim.name, "use 'lars', 'sgd' or 'adamw'")
  if not config.optim.base_lr > 0:
    _fail("optim.base_lr", config.optim.base_lr, "must be positive")
  if config.optim.weight_decay < 0:
    _fail("optim.weight_decay", config.optim.weight_decay, "must be non-negative")
  config_checks.in_range(config, "optim.momentum", 0.0, 1.0, closed_high=False)
  config_checks.in_range(config, "optim.b1", 0.0, 1.0, closed_high=False)
  config_checks.in_range(config, "optim.b2", 0.0, 1.0, closed_high=False)
  if not config.optim.trust_coefficient > 0:
    _fail("optim.trust_coefficient", config.optim.trust_coefficient, "must be positive")
  if config.optim.warmup_steps < 0:
    _fail("optim.warmup_steps", config.optim.warmup_steps, "must be non-negative")
  if not config.optim.warmup_epochs >= 0:
    _fail("optim.warmup_epochs", config.optim.warmup_epochs, "must be non-negative (0: use optim.warmup_steps)")
  optim.check_config(config)

  if not isinstance(config.augment.size, int) or config.augment.size < 2:
    _fail("augment.size", config.augment.size, "must be an integer of at least 2 (pixels)")
  if config.augment.num_local_crops < 0:
    _fail("augment.num_local_crops", config.augment.num_local_crops, "must be non-negative")
  if config.augment.num_local_crops and not 0 < config.augment.local_size < config.augment.size:
    _fail("augment.local_size", config.augment.local_size, f"local crops must be smaller than the global ones "
          f"(augment.size={config.augment.size})")
  if config.data.image_size > 0 and config.augment.size > 2 * config.data.image_size:
    _fail("augment.size", config.augment.size, f"crops more than twice data.image_size "
          f"({config.data.image_size}) only upsample")
  for field in ("crop_scale", "local_crop_scale"):
    config_checks.ordered_pair(config, f"augment.{field}", 0, 1, closed_low=False)
  config_checks.in_range(config, "augment.jitter_strength", 0.0, 10.0)
  config_checks.probability(config, "augment.blur_prob")
  config_checks.probabilities(config, "augment.blur_probs", 2)
  config_checks.probabilities(config, "augment.solarize_probs", 2)
  config_checks.probability(config, "augment.rotation_prob")
  config_checks.in_range(config, "augment.rotation_degrees", 0.0, 180.0)
  if config.augment.interpolation not in INTERPOLATIONS:
    _fail("augment.interpolation", config.augment.interpolation,
          f"use one of {', '.join(map(repr, INTERPOLATIONS))}")

  tasks.check(config, num_devices)
  _check_randaugment_warps(config)
  if config.model.init_from:
    import os

    from jaxssl.common.workdir import is_url
    if is_url(config.model.init_from) or not os.path.exists(config.model.init_from):
      _fail("model.init_from", config.model.init_from, "no such weights file or folder (a timm hub folder, or a "
            ".safetensors, .npz or PyTorch file on this machine)")
  if config.model.padding not in PADDINGS:
    _fail("model.padding", config.model.padding, f"use one of {', '.join(map(repr, PADDINGS))}")
  if config.model.encoder.startswith("vit") and config.model.padding != "same":
    _fail("model.padding", config.model.padding, f"only ResNets read it; model.encoder={config.model.encoder!r}")
  if not config.model.encoder.startswith("vit"):
    for field in VIT_ONLY:
      if config.model[field] != getattr(ViT, field):          # the ViT's own default
        _fail(f"model.{field}", config.model[field], f"only ViTs read it; model.encoder={config.model.encoder!r}")
  if config.model.drop_path_rate > 0 and not tasks.get(config).drop_path:
    _fail("model.drop_path_rate", config.model.drop_path_rate,
          f"method {config.method.name!r} does not hand the encoder drop-path keys")
  _refuse_unread_augment_fields(config)

  if config.data.source not in data.SOURCES:
    _fail("data.source", config.data.source, f"use one of {', '.join(data.SOURCES)}")
  if config.data.image_size < 0:
    _fail("data.image_size", config.data.image_size, "must be 0 (keep) or positive")
  if config.data.source == "folder" and config.data.image_size <= 0:
    _fail("data.image_size", config.data.image_size, "an image folder needs a positive size")
  if not (isinstance(config.data.label_fraction, (int, float)) and 0 < config.data.label_fraction <= 1):
    _fail("data.label_fraction", config.data.label_fraction, "must be in (0, 1] (1: every label)")
  config_checks.non_negative_int(config, "data.label_seed")
  if config.data.prefetch < 0:
    _fail("data.prefetch", config.data.prefetch, "must be non-negative")
  if config.data.crop_on not in data.CROP_PLACES:
    _fail("data.crop_on", config.data.crop_on, f"use one of {', '.join(map(repr, data.CROP_PLACES))}")
  if not isinstance(config.data.workers, int) or config.data.workers < 0:
    _fail("data.workers", config.data.workers, "must be a non-negative integer (0: one per available core)")
  if not isinstance(config.data.max_bad_images, int) or config.data.max_bad_images < 0:
    _fail("data.max_bad_images", config.data.max_bad_images, "must be a non-negative integer (0: stop at the "
          "first unreadable image)")
  if not isinstance(config.data.read_timeout_s, (int, float)) or not config.data.read_timeout_s >= 0:
    _fail("data.read_timeout_s", config.data.read_timeout_s, "must be a non-negative number of seconds (0: no "
          "limit)")
  if config.data.source == "synthetic":
    for field in ("synthetic_num_examples", "synthetic_size"):
      config_checks.positive_int(config, f"data.{field}")
    if config.data.synthetic_channels not in (1, 3):
      _fail("data.synthetic_channels", config.data.synthetic_channels, "use 1 or 3")
  if not config.data.train_split:
    _fail("data.train_split", config.data.train_split, "must name a split")

  if config.eval.every_epochs < 0:
    _fail("eval.every_epochs", config.eval.every_epochs, "must be non-negative (0 = only at the end)")
  for field in ("online_probe_lr", "linear_lr"):
    if not config.eval[field] > 0:
      _fail(f"eval.{field}", config.eval[field], "must be positive")
  for field in ("linear_epochs", "linear_batch_size", "batch_size"):
    if not isinstance(config.eval[field], int) or config.eval[field] <= 0:
      _fail(f"eval.{field}", config.eval[field], "must be a positive integer")
  if config.eval.knn_k <= 0:
    _fail("eval.knn_k", config.eval.knn_k, "must be positive")
  if not config.eval.knn_temperature > 0:
    _fail("eval.knn_temperature", config.eval.knn_temperature, "must be positive")
  if len(config.data.mean) != len(config.data.std) or any(s <= 0 for s in config.data.std):
    _fail("data.std", tuple(config.data.std), "needs one positive value per entry of data.mean")


class _Reads:
  """A read-only view of a ConfigDict that records the dotted names of the fields read through it."""

  def __init__(self, section: ml_collections.ConfigDict, seen: set[str], prefix: str = ""):
    self._section, self._seen, self._prefix = section, seen, prefix

  def __getattr__(self, name: str) -> Any:
    if name.startswith("_"):
      raise AttributeError(name)
    return self[name]

  def __getitem__(self, name: str) -> Any:
    value = self._section[name]
    if isinstance(value, ml_collections.ConfigDict):
      return _Reads(value, self._seen, f"{self._prefix}{name}.")
    self._seen.add(self._prefix + name)
    return value

  def __contains__(self, name: str) -> bool:
    return name in self._section

  def get(self, name: str, default: Any = None) -> Any:
    return self[name] if name in self._section else default


def augment_fields_read(config: ml_collections.ConfigDict) -> set[str]:
  """The ``augment.*`` fields the config's method reads to build its view recipes."""
  seen: set[str] = set()
  tasks.get(config).recipes(_Reads(config, seen))
  return {field for field in seen if field.startswith("augment.")}


def _refuse_unread_augment_fields(config: ml_collections.ConfigDict) -> None:
  """A recipe knob the method never reads (SimCLR's blur_prob for BYOL, multi-crop for SimCLR) would be
  silently ignored: refuse it when it differs from the schema's default."""
  schema = defaults.get_config(config.method.name).augment
  read = augment_fields_read(config)
  for key in config.augment.keys():
    field = f"augment.{key}"
    if field not in read and config.augment[key] != schema[key]:
      used = ", ".join(sorted(read))
      _fail(field, config.augment[key], f"not used by method {config.method.name!r} (its views read {used})")
