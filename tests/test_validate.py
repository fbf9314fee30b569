"""Config validation: each bad field gives a ConfigError whose one line names it (in-process, fast)."""

import pytest

from jaxssl import tasks
from jaxssl.schema import defaults as common
from jaxssl.schema import validate


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
    ("simclr", "data.max_bad_images", -1, "config.data.max_bad_images=-1: must be a non-negative integer"),
    ("simclr", "data.read_timeout_s", -5.0, "config.data.read_timeout_s=-5.0: must be a non-negative number"),
    ("simclr", "optim.warmup_epochs", -1.0, "config.optim.warmup_epochs=-1.0"),
    ("simclr", "optim.b2", 1.0, "config.optim.b2=1.0: must be in [0, 1)"),
    ("dino", "model.pos_embed", "alibi", "config.model.pos_embed='alibi': use one of 'learned', 'sincos', 'rope'"),
    ("dino", "model.weight_init", "torch", "config.model.weight_init='torch': use one of 'dino', 'mae'"),
    ("mae", "model.pool", "max", "config.model.pool='max': use one of 'cls', 'mean'"),
    ("mae", "model.drop_path_rate", 1.0, "config.model.drop_path_rate=1.0: must be in [0, 1)"),
    ("simclr", "model.drop_path_rate", 0.1, "config.model.drop_path_rate=0.1: only ViTs read it; model.encoder='small_resnet'"),
    ("simclr", "model.pool", "mean", "config.model.pool='mean': only ViTs read it"),
    ("simclr", "model.scan_layers", True, "config.model.scan_layers=True: only ViTs read it"),
    ("simclr", "model.patch_size", 16, "config.model.patch_size=16: only ViTs read it"),
    ("mae", "model.stem", "imagenet", "config.model.stem='imagenet': only ResNets read it; model.encoder='vit_micro'"),
    ("ijepa", "model.zero_init_residual", True, "config.model.zero_init_residual=True: only ResNets read it"),
    ("ibot", "model.conv", "xla", "config.model.conv='xla': only ResNets read it"),
    ("mae", "parallel.fsdp_min_size", 0, "config.parallel.fsdp_min_size=0: must be a positive integer"),
    ("mae", "parallel.fsdp_per_block", None, "config.parallel.fsdp_per_block=None: must be True or False"),
    # Method-owned fields, checked by each method's check(config).
    ("mae", "method.mask_ratio", 1.0, "config.method.mask_ratio=1.0: must be in [0, 1)"),
    ("mae", "method.decoder_dim", 30, "config.method.decoder_dim=30: must be divisible by method.decoder_heads"),
    ("mae", "model.encoder", "small_resnet", "config.model.encoder='small_resnet': MAE masks patches: use a ViT"),
    ("simclr", "method.proj_dim", 0, "config.method.proj_dim=0: must be a positive integer"),
    ("byol", "method.pred_hidden_dims", (-3,), "config.method.pred_hidden_dims=(-3,): must be a tuple"),
    ("simclr", "method.temperature", 1e-30, "config.method.temperature=1e-30: must be in [0.001, 1000]"),
    ("mocov3", "method.base_momentum", 1.0, "config.method.base_momentum=1.0: must be in [0, 1)"),
    ("meanshift", "method.topk", 0, "config.method.topk=0: must be in [1, method.bank_size]"),
    ("meanshift", "method.ema_schedule", "linear", "config.method.ema_schedule='linear'"),
    ("wmse", "method.w_size", 64, "config.method.w_size=64: must exceed method.proj_dim"),
    ("dino", "method.out_dim", -1, "config.method.out_dim=-1: must be a positive integer"),
    ("dino", "method.center_momentum", 1.5, "config.method.center_momentum=1.5"),
    ("swav", "method.sinkhorn_iterations", 0, "config.method.sinkhorn_iterations=0"),
    # The shared sections' ranges.
    ("simclr", "seed", -1, "config.seed=-1: must be an integer in [0, 2**31)"),
    ("simclr", "optim.momentum", -5.0, "config.optim.momentum=-5.0: must be in [0, 1)"),
    ("simclr", "augment.jitter_strength", -3.0, "config.augment.jitter_strength=-3.0"),
    ("simclr", "augment.blur_prob", 5.0, "config.augment.blur_prob=5.0: must be in [0, 1]"),
    ("byol", "augment.solarize_probs", (2.0, -1.0), "config.augment.solarize_probs=(2.0, -1.0): must be 2"),
    ("simclr", "augment.crop_scale", (0.1, 0.5, 1.0), "config.augment.crop_scale=(0.1, 0.5, 1.0): need (low"),
    ("simclr", "augment.size", 1, "config.augment.size=1"),
    ("simclr", "augment.rotation_prob", 1.5, "config.augment.rotation_prob=1.5"),
    # Recipe knobs the method does not read are refused, not ignored.
    ("byol", "augment.jitter_strength", 0.5, "config.augment.jitter_strength=0.5: not used by method 'byol'"),
    ("simclr", "augment.blur_probs", (0.5, 0.5), "config.augment.blur_probs=(0.5, 0.5): not used by method"),
    ("vicreg", "augment.blur_prob", 0.5, "config.augment.blur_prob=0.5: not used by method 'vicreg'"),
    ("simclr", "augment.num_local_crops", 4, "config.augment.num_local_crops=4: not used by method 'simclr'"),
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


def test_a_batch_of_one_is_refused_where_the_batch_is_coupled_and_enough_for_mae():
  config = common.get_config("vicreg")
  config.train.batch_size = 1
  with pytest.raises(validate.ConfigError, match=r"config.train.batch_size=1: gives 1 example per step, but "
                                                 r"method.name='vicreg' has a loss that couples the examples"):
    validate.validate(config, num_devices=1)
  config = common.get_config("mae")
  config.train.batch_size = 1
  validate.validate(config, num_devices=1)     # a per-example loss and LayerNorm: one image is a batch


def test_swav_runs_without_a_queue():
  config = common.get_config("swav")
  config.method.queue_size = 0
  validate.validate(config, num_devices=8)


def test_drop_path_is_refused_for_methods_that_give_the_encoder_no_keys():
  config = common.get_config("dino")
  config.model.encoder, config.model.patch_size, config.model.drop_path_rate = "vit_micro", 4, 0.1
  with pytest.raises(validate.ConfigError, match=r"^config.model.drop_path_rate=0.1: method 'dino' does not hand "
                     "the encoder drop-path keys$"):
    validate.validate(config, num_devices=8)
  config = common.get_config("mae")
  config.model.drop_path_rate = 0.1
  validate.validate(config, num_devices=8)


def test_defaults_of_every_method_are_valid():
  from jaxssl import tasks
  for name in tasks.names():
    validate.validate(common.get_config(name), num_devices=8)


def test_unread_knobs_are_found_by_reading_the_recipes():
  from jaxssl.schema.validate import augment_fields_read
  simclr = augment_fields_read(common.get_config("simclr"))
  assert {"augment.jitter_strength", "augment.blur_prob", "augment.rotation_prob"} <= simclr
  assert "augment.blur_probs" not in simclr and "augment.num_local_crops" not in simclr
  dino = augment_fields_read(common.get_config("dino"))
  assert {"augment.blur_probs", "augment.solarize_probs", "augment.num_local_crops"} <= dino


def test_validate_names_no_method():
  """validate.py keeps the schema's sections; no method's name or method-only field appears in its code."""
  import inspect
  import re
  from jaxssl.schema import validate as module
  code = re.sub(r'"""(.|\n)*?"""', "", inspect.getsource(module))     # docstrings may give examples
  method_fields = {f for name in tasks.names() for f in tasks.defaults(name)}
  method_fields -= {"name"}
  for word in sorted(set(tasks.names()) | method_fields):
    assert not re.search(rf"\b{word}\b", code), word


def test_every_config_loads_from_any_directory(tmp_path):
  """A config imports the schema from the package, not a sibling module: it loads with the repository off
  sys.path and another working directory, and its defaults validate."""
  import glob
  import os
  import subprocess
  import sys

  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  paths = sorted(p for p in glob.glob(os.path.join(root, "configs", "*.py"))
                 if not os.path.basename(p).startswith("_"))
  code = ("import importlib.util, sys\n"
          "from jaxssl.schema import validate\n"
          "for path in sys.argv[1:]:\n"
          "  spec = importlib.util.spec_from_file_location('config', path)\n"
          "  module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
          "  validate.validate(module.get_config(), num_devices=1)\n"
          "print(len(sys.argv) - 1)\n")
  site = tmp_path / "site"                 # jaxssl importable, the repository's other folders not
  site.mkdir()
  os.symlink(os.path.join(root, "jaxssl"), site / "jaxssl")
  env = {**os.environ, "PYTHONPATH": str(site)}
  done = subprocess.run([sys.executable, "-c", code, *paths], cwd=tmp_path, env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  assert done.stdout.split()[-1] == str(len(paths)) and len(paths) >= 16


def test_the_readme_lists_every_field_as_the_schema_declares_it():
  """The README's field table is written from jaxssl/schema/fields.py (regenerate it with fields.markdown())."""
  import os

  from jaxssl.schema import fields
  readme = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")).read()
  assert fields.markdown() in readme, "README.md's field table differs from jaxssl.schema.fields.markdown()"
  shared = {f"{section}.{name}" for section in fields.SECTIONS for name in common.get_config("simclr")[section]}
  assert shared == {field for field, _, _ in fields.rows()} - {"seed"}


def test_a_field_rule_names_the_field_and_the_value():
  from jaxssl.schema import fields
  config = common.get_config("simclr")
  config.optim.name = "adam"
  with pytest.raises(validate.ConfigError, match=r"^config.optim.name='adam': use 'lars', 'sgd' or 'adamw'$"):
    fields.check(config)
