"""Config validation, once at start: every error is one line naming the field and its value."""

from __future__ import annotations

import math

import ml_collections

from jaxssl import methods
from jaxssl.models import ENCODERS
from jaxssl.models.resnet import CONV_IMPLEMENTATIONS


class ConfigError(ValueError):
  """A config field with a bad value."""


def _fail(field: str, value, why: str):
  raise ConfigError(f"config.{field}={value!r}: {why}")


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


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ConfigError for the first bad field."""
  from jaxssl import defaults

  if config.method.name not in methods.names():
    _fail("method.name", config.method.name, f"unknown method; known: {', '.join(methods.names())}")
  unknown = _unknown_key(config, defaults.get_config(config.method.name))
  if unknown:
    value = config
    for part in unknown.split("."):
      value = value[part]
    _fail(unknown, value, "unknown config key (a typo? the schema is jaxssl/defaults.py)")
  for field, value in _leaves(config):
    numbers = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
      _fail(field, value, "must be finite")
  if config.model.encoder not in ENCODERS:
    _fail("model.encoder", config.model.encoder, f"unknown encoder; known: {', '.join(sorted(ENCODERS))}")
  if config.model.encoder.startswith("vit"):
    a = config.augment
    sizes = [("augment.size", a.size)] + ([("augment.local_size", a.local_size)] if a.num_local_crops else [])
    for field, size in sizes:
      if config.model.patch_size <= 0 or size % config.model.patch_size:
        _fail("model.patch_size", config.model.patch_size, f"must divide {field}={size} (a ViT cuts crops into "
              "patches)")
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

  if config.optim.name not in ("lars", "sgd", "adamw"):
    _fail("optim.name", config.optim.name, "use 'lars', 'sgd' or 'adamw'")
  if not config.optim.base_lr > 0:
    _fail("optim.base_lr", config.optim.base_lr, "must be positive")
  if config.optim.weight_decay < 0:
    _fail("optim.weight_decay", config.optim.weight_decay, "must be non-negative")
  if config.optim.warmup_steps < 0:
    _fail("optim.warmup_steps", config.optim.warmup_steps, "must be non-negative")
  if not config.optim.warmup_epochs >= 0:
    _fail("optim.warmup_epochs", config.optim.warmup_epochs, "must be non-negative (0: use optim.warmup_steps)")

  if config.augment.size <= 0:
    _fail("augment.size", config.augment.size, "must be positive")
  if config.augment.num_local_crops < 0:
    _fail("augment.num_local_crops", config.augment.num_local_crops, "must be non-negative")
  if config.augment.num_local_crops and not 0 < config.augment.local_size < config.augment.size:
    _fail("augment.local_size", config.augment.local_size, f"local crops must be smaller than the global ones "
          f"(augment.size={config.augment.size})")
  if config.data.image_size > 0 and config.augment.size > 2 * config.data.image_size:
    _fail("augment.size", config.augment.size, f"crops more than twice data.image_size "
          f"({config.data.image_size}) only upsample")
  low, high = config.augment.crop_scale
  if not 0 < low <= high <= 1:
    _fail("augment.crop_scale", tuple(config.augment.crop_scale), "need 0 < low <= high <= 1")

  if "base_momentum" in config.method and not 0 <= config.method.base_momentum < 1:
    _fail("method.base_momentum", config.method.base_momentum, "must be in [0, 1)")
  if "temperature" in config.method and not config.method.temperature > 0:
    _fail("method.temperature", config.method.temperature, "must be positive")

  for field in ("queue_size", "bank_size"):
    optional = field in methods.optional_sizes(config.method.name)
    size = config.method.get(field, None)
    if size is not None and (size < (0 if optional else 1) or size % batch):
      _fail(f"method.{field}", size, f"must be a {'' if optional else 'positive '}multiple of train.batch_size "
            f"({batch})")
  if "topk" in config.method and not 0 < config.method.topk <= config.method.bank_size:
    _fail("method.topk", config.method.topk, "must be in [1, method.bank_size]")

  if "w_iter" in config.method and config.method.w_iter < 1:
    _fail("method.w_iter", config.method.w_iter, "must be at least 1")
  if "w_size" in config.method:
    w_size = config.method.w_size
    if w_size <= config.method.proj_dim or batch % w_size:
      _fail("method.w_size", w_size, f"must exceed method.proj_dim ({config.method.proj_dim}) and divide "
            f"train.batch_size ({batch})")

  from jaxssl.data import SOURCES

  if config.data.source not in SOURCES:
    _fail("data.source", config.data.source, f"use one of {', '.join(SOURCES)}")
  if config.data.image_size < 0:
    _fail("data.image_size", config.data.image_size, "must be 0 (keep) or positive")
  if config.data.source == "folder" and config.data.image_size <= 0:
    _fail("data.image_size", config.data.image_size, "an image folder needs a positive size")
  if config.data.prefetch < 0:
    _fail("data.prefetch", config.data.prefetch, "must be non-negative")
  from jaxssl.data import CROP_PLACES

  if config.data.crop_on not in CROP_PLACES:
    _fail("data.crop_on", config.data.crop_on, f"use one of {', '.join(map(repr, CROP_PLACES))}")
  if not isinstance(config.data.workers, int) or config.data.workers < 0:
    _fail("data.workers", config.data.workers, "must be a non-negative integer (0: one per available core)")
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
