"""Config validation, once at start: every error is one line naming the field and its value.

This module holds the schema's sections and the rules across them; each method checks its own fields
(``check(config)`` in its module, through ``jaxssl.tasks.check``), and a knob of the shared sections that the
chosen method's view recipes do not read is refused when set away from its default.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from jaxssl import data, tasks
from jaxssl.common import config_checks
from jaxssl.common.config_checks import ConfigError, fail as _fail  # noqa: F401  (ConfigError: the public name)
from jaxssl.common.workdir import is_url
from jaxssl.ops import optim
from jaxssl.schema import defaults, fields


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
  """Raises ConfigError for the first bad field: the method's name, unknown keys, non-finite values, each
  field's own rule (``jaxssl.schema.fields``), then the rules across fields and the method's own check."""
  if config.method.name not in tasks.names():
    _fail("method.name", config.method.name, f"unknown method; known: {', '.join(tasks.names())}")
  unknown = _unknown_key(config, defaults.get_config(config.method.name))
  if unknown:
    value = config
    for part in unknown.split("."):
      value = value[part]
    _fail(unknown, value, "unknown config key (a typo? the schema is jaxssl/schema/fields.py)")
  for field, value in _leaves(config):
    if not config_checks.finite(value):
      _fail(field, value, "must be finite")
  fields.check(config)
  _check_model(config)
  _check_train(config, num_devices)
  optim.check_config(config)
  _check_augment(config)
  tasks.check(config, num_devices)
  _check_randaugment_warps(config)
  _check_readers(config)
  _check_data(config)


def _check_model(config: ml_collections.ConfigDict) -> None:
  m = config.model
  if m.encoder.startswith("vit"):
    a = config.augment
    sizes = [("augment.size", a.size)] + ([("augment.local_size", a.local_size)] if a.num_local_crops else [])
    for field, size in sizes:
      if m.patch_size <= 0 or size % m.patch_size:
        _fail("model.patch_size", m.patch_size, f"must divide {field}={size} (a ViT cuts crops into patches)")
  if m.pool == "global" and not tasks.global_pool(config.method.name):
    _fail("model.pool", m.pool, f"MAE's global pool (no final norm on the tokens) is for fine-tuning; "
          f"method {config.method.name!r} reads the normed tokens: use 'cls' or 'mean'")
  if not m.class_token and m.pool == "cls":
    _fail("model.pool", m.pool, "there is no class token (model.class_token=False): use 'mean' or 'global'")


def _check_train(config: ml_collections.ConfigDict, num_devices: int) -> None:
  batch = config.train.batch_size
  if batch % num_devices:
    _fail("train.batch_size", batch, f"must be divisible by the number of devices ({num_devices})")
  if config.train.num_steps <= 0 and config.train.num_epochs <= 0:
    _fail("train.num_epochs", config.train.num_epochs, "must be positive when train.num_steps is not set")
  _check_accumulation(config, num_devices)
  _check_small_batch(config)


def _check_augment(config: ml_collections.ConfigDict) -> None:
  a = config.augment
  if a.num_local_crops and not 0 < a.local_size < a.size:
    _fail("augment.local_size", a.local_size, f"local crops must be smaller than the global ones "
          f"(augment.size={a.size})")
  if config.data.image_size > 0 and a.size > 2 * config.data.image_size:
    _fail("augment.size", a.size, f"crops more than twice data.image_size ({config.data.image_size}) only "
          "upsample")


def _check_readers(config: ml_collections.ConfigDict) -> None:
  """Fields that only some models or methods read, set where nothing reads them; weights that are not there."""
  m = config.model
  if m.init_from and (is_url(m.init_from) or not os.path.exists(m.init_from)):
    _fail("model.init_from", m.init_from, "no such weights file or folder (a timm hub folder, or a .safetensors, "
          ".npz or PyTorch file on this machine)")
  readers = {"vit": "ViTs", "resnet": "ResNets"}
  for field in fields.other_family_fields(config):     # another encoder's field, set: it would be ignored
    name = field.split(".")[1]
    if m[name] != fields.MODEL[name].default:
      _fail(field, m[name], f"only {readers[fields.MODEL[name].only]} read it; model.encoder={m.encoder!r}")
  if m.drop_path_rate > 0 and not tasks.get(config).drop_path:
    _fail("model.drop_path_rate", m.drop_path_rate,
          f"method {config.method.name!r} does not hand the encoder drop-path keys")
  _refuse_unread_augment_fields(config)


def _check_data(config: ml_collections.ConfigDict) -> None:
  d = config.data
  if d.source == "folder" and d.image_size <= 0:
    _fail("data.image_size", d.image_size, "an image folder needs a positive size")
  if d.source == "synthetic":
    for field in ("synthetic_num_examples", "synthetic_size"):
      config_checks.positive_int(config, f"data.{field}")
    if d.synthetic_channels not in (1, 3):
      _fail("data.synthetic_channels", d.synthetic_channels, "use 1 or 3")
  if len(d.mean) != len(d.std) or any(s <= 0 for s in d.std):
    _fail("data.std", tuple(d.std), "needs one positive value per entry of data.mean")


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
