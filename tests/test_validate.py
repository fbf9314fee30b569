"""Config validation: each bad field gives a ConfigError whose one line names it (in-process, fast)."""

import pytest

from jaxssl import validate
from configs import common


def _set(config, path, value):
  *parents, last = path.split(".")
  node = config
  for part in parents:
    node = node[part]
  node[last] = value          # a new key too: method configs are plain (unlocked) ConfigDicts


@pytest.mark.parametrize("method,path,value,message", [
    ("simclr", "train.num_epoch", 3, "config.train.num_epoch=3: unknown config key"),
    ("simclr", "data.sources", "tfds", "config.data.sources='tfds': unknown config key"),
    ("simclr", "data.source", "hdf5", "config.data.source='hdf5'"),
    ("simclr", "data.image_size", -1, "config.data.image_size=-1"),
    ("simclr", "data.prefetch", -2, "config.data.prefetch=-2"),
    ("simclr", "train.checkpoint_every", -1, "config.train.checkpoint_every=-1"),
    ("simclr", "train.keep_checkpoints", 0, "config.train.keep_checkpoints=0"),
    ("simclr", "eval.every_epochs", -1.0, "config.eval.every_epochs=-1.0"),
    ("simclr", "eval.linear_epochs", 0, "config.eval.linear_epochs=0"),
    ("simclr", "eval.online_probe_lr", 0.0, "config.eval.online_probe_lr=0.0"),
    ("swav", "augment.local_size", 40, "config.augment.local_size=40: local crops must be smaller"),
    ("simclr", "augment.crop_scale", (0.5, 0.2), "config.augment.crop_scale=(0.5, 0.2)"),
    ("simclr", "model.encoder", "vit", "config.model.encoder='vit'"),
    ("nnclr", "method.queue_size", 0, "config.method.queue_size=0: must be a positive multiple"),
    ("swav", "method.queue_size", 100, "config.method.queue_size=100: must be a multiple"),
    ("simclr", "optim.weight_decay", float("nan"), "config.optim.weight_decay=nan: must be finite"),
    ("simclr", "optim.base_lr", float("inf"), "config.optim.base_lr=inf: must be finite"),
    ("byol", "method.base_momentum", float("nan"), "config.method.base_momentum=nan: must be finite"),
    ("simclr", "augment.crop_scale", (0.2, float("inf")), "config.augment.crop_scale=(0.2, inf): must be finite"),
    ("simclr", "data.crop_on", "gpu", "config.data.crop_on='gpu': use one of"),
    ("simclr", "data.workers", -1, "config.data.workers=-1"),
    ("simclr", "optim.warmup_epochs", -1.0, "config.optim.warmup_epochs=-1.0"),
])
def test_bad_fields_are_named(method, path, value, message):
  config = common.get_config(method)
  if method == "swav":
    config.augment.num_local_crops = 2
  _set(config, path, value)
  with pytest.raises(validate.ConfigError) as raised:
    validate.validate(config, num_devices=8)
  assert str(raised.value).startswith(message), str(raised.value)
  assert "\n" not in str(raised.value)


def test_swav_runs_without_a_queue():
  config = common.get_config("swav")
  config.method.queue_size = 0
  validate.validate(config, num_devices=8)


def test_defaults_of_every_method_are_valid():
  from jaxssl import methods
  for name in methods.names():
    validate.validate(common.get_config(name), num_devices=8)
