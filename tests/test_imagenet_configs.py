"""The ImageNet recipes (configs/*_imagenet.py): valid as written for ImageNet and Imagenette, and a few training
steps on a generated JPEG folder with the encoder made small by override, cropped on the host."""

import importlib.util
import math
import os

import pytest

import helpers
from jaxssl import data, train
from jaxssl.ops import optim
from jaxssl.schema import validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("simclr", "byol", "vicreg", "mocov2", "dino", "ibot", "lejepa", "simmim", "msn")


def _get_config(method, *arg):
  path = os.path.join(ROOT, "configs", f"{method}_imagenet.py")
  spec = importlib.util.spec_from_file_location(f"{method}_imagenet", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(*arg)


@pytest.mark.parametrize("method", METHODS)
def test_recipes_are_valid_as_written(method):
  config = _get_config(method)
  validate.validate(config, num_devices=8)
  assert config.data.dataset == "imagenet2012" and data.crops_on_host(config.data)
  assert config.augment.size == 224 and config.model.encoder in ("resnet50", "vit_small", "vit_base")
  # The warm-up is 10 epochs of ImageNet at the paper's batch (MoCo v2's cosine has none, MSN's is 15).
  steps_per_epoch = 1_281_167 // config.train.batch_size
  warmup_epochs = {"mocov2": 0, "msn": 15}.get(method, 10)
  assert optim.warmup_steps(config, steps_per_epoch) == round(warmup_epochs * steps_per_epoch)
  small = _get_config(method, "imagenette")
  validate.validate(small, num_devices=8)
  assert small.data.dataset == "imagenette/full-size-v2" and small.train.batch_size == 256
  with pytest.raises(ValueError, match="config argument 'imagenet': use one of"):
    _get_config(method, "imagenet")


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
  return helpers.jpeg_splits(tmp_path_factory.mktemp("imagenet_like"), {"train": 16, "validation": 8})


# One ResNet recipe and one multi-crop ViT recipe run; the others differ from these in values, which
# test_recipes_are_valid_as_written checks, not in code paths.
@pytest.mark.slow
@pytest.mark.parametrize("method", ["simclr", "dino"])
def test_a_few_steps_on_a_jpeg_folder(method, jpegs, tmp_path, capsys):
  config = _get_config(method, "folder")
  config.data.data_dir, config.data.workers = str(jpegs), 2
  config.data.image_size, config.augment.size = 24, 16
  config.model.compute_dtype = "float32"
  if method in ("dino", "ibot"):
    config.model.encoder, config.model.patch_size = "vit_micro", 4
    config.augment.local_size, config.augment.num_local_crops = 8, 2
    config.method.proj_hidden_dims, config.method.bottleneck_dim, config.method.out_dim = (32,), 8, 32
    if method == "ibot":
      config.method.patch_out_dim = 32
    # The preset's schedules count this folder's epochs (16 images at batch 8: 2 steps each); a frozen head for
    # one epoch and a 30-epoch teacher warm-up would outlast a run of 2 steps (refused), half an epoch does not.
    config.optim.rules = ((config.optim.rules[0][0], 1.0, 1.0, 0.5),)
    config.method.teacher_temperature_warmup_epochs = config.method.teacher_temperature_hold_epochs = 0.5
  else:
    config.model.encoder, config.model.stem = "small_resnet", "cifar"
    config.method.proj_hidden_dims, config.method.proj_dim = (32,), 16
    if "pred_hidden_dims" in config.method:
      config.method.pred_hidden_dims = (32,)
  config.train.batch_size, config.train.num_steps, config.eval.batch_size = 8, 2, 64
  results = train.run(config, str(tmp_path))
  assert math.isfinite(results["final_loss"]) and 0 <= results["knn_accuracy"] <= 1
  if method == "dino":
    assert ("note: schedules in epochs of this run's data (2 steps each): optim.rules[0] frozen 0.5 epochs = 1 "
            "steps; method.teacher_temperature_warmup_epochs=0.5 = 1 steps; "
            "method.teacher_temperature_hold_epochs=0.5 = 1 steps") in capsys.readouterr().out


def test_mae_recipe_is_the_papers_for_base_and_large():
  config = _get_config("mae")
  validate.validate(config, num_devices=8)
  assert (config.model.encoder, config.model.patch_size, config.augment.size) == ("vit_base", 16, 224)
  assert (config.model.pos_embed, config.model.weight_init, config.method.mask_ratio) == ("sincos", "mae", 0.75)
  assert (config.optim.name, config.optim.b1, config.optim.b2, config.optim.weight_decay) == ("adamw", 0.9, 0.95, 0.05)
  assert config.train.batch_size == 4096 and config.train.num_epochs == 800 and data.crops_on_host(config.data)
  steps_per_epoch = 1_281_167 // 4096
  assert optim.warmup_steps(config, steps_per_epoch) == round(40 * steps_per_epoch)
  large = _get_config("mae", "large,imagenette")
  validate.validate(large, num_devices=8)
  assert large.model.encoder == "vit_large" and large.data.dataset == "imagenette/full-size-v2"
  with pytest.raises(ValueError, match="config argument 'huge': use a size"):
    _get_config("mae", "huge")


def test_ijepa_recipe_is_the_official_vith14_and_a_base():
  config = _get_config("ijepa")
  validate.validate(config, num_devices=8)
  assert (config.model.encoder, config.model.patch_size, config.augment.size) == ("vit_huge", 14, 224)
  m = config.method
  assert (m.predictor_dim, m.predictor_depth, m.predictor_heads, m.num_targets, m.min_keep) == (384, 12, 16, 4, 10)
  assert (tuple(m.target_scale), tuple(m.target_aspect), tuple(m.context_scale)) == ((0.15, 0.2), (0.75, 1.5),
                                                                                     (0.85, 1.0))
  o = config.optim
  assert config.train.batch_size == 2048 and o.base_lr * 2048 / 256 == 1e-3 and config.train.num_epochs == 300
  assert (o.weight_decay, o.weight_decay_end, o.min_lr) == (0.04, 0.4, 1e-6)
  assert optim.warmup_steps(config, 1_281_167 // 2048) == round(40 * (1_281_167 // 2048))
  assert (config.model.pool, config.model.compute_dtype, tuple(config.augment.crop_scale)) == ("mean", "bfloat16",
                                                                                               (0.3, 1.0))
  base = _get_config("ijepa", "base,imagenette")
  validate.validate(base, num_devices=8)
  assert (base.model.encoder, base.model.patch_size, base.method.predictor_depth) == ("vit_base", 16, 6)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mae", "ijepa"])
def test_masked_a_few_steps_on_a_jpeg_folder(method, jpegs, tmp_path):
  config = _get_config(method, "folder")
  config.data.data_dir, config.data.workers = str(jpegs), 2
  config.data.image_size, config.augment.size = 24, 16
  config.model.compute_dtype, config.model.encoder, config.model.patch_size = "float32", "vit_micro", 4
  if method == "mae":
    config.method.decoder_dim, config.method.decoder_depth, config.method.decoder_heads = 32, 1, 2
  else:
    config.method.predictor_dim, config.method.predictor_depth, config.method.predictor_heads = 32, 1, 2
    config.method.min_keep = 0                      # a 4 x 4 grid: targets of 1-3 patches
  config.train.batch_size, config.train.num_steps, config.eval.batch_size = 8, 2, 64
  results = train.run(config, str(tmp_path))
  assert math.isfinite(results["final_loss"]) and 0 <= results["knn_accuracy"] <= 1


def _finetune_config(arg=""):
  path = os.path.join(ROOT, "configs", "finetune_vit_imagenet.py")
  spec = importlib.util.spec_from_file_location("finetune_vit_imagenet", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


# MAE's FINETUNE.md: --blr, --layer_decay, --drop_path, --epochs per size; main_finetune.py's --mixup_mode batch.
FINETUNE_MD = {"base": ("vit_base", 16, 5e-4, 0.65, 0.1, 100), "large": ("vit_large", 16, 1e-3, 0.75, 0.2, 50),
               "huge": ("vit_huge", 14, 1e-3, 0.75, 0.3, 50)}


@pytest.mark.parametrize("size", sorted(FINETUNE_MD))
def test_finetune_recipe_is_maes_finetune_md_for_each_size(size):
  config = _finetune_config(size)
  validate.validate(config, num_devices=8)
  o, m = config.optim, config.method
  got = (config.model.encoder, config.model.patch_size, o.base_lr, o.layer_decay, config.model.drop_path_rate,
         config.train.num_epochs)
  assert got == FINETUNE_MD[size]
  assert config.train.batch_size == 1024 and (o.b1, o.b2, o.weight_decay, o.min_lr) == (0.9, 0.999, 0.05, 1e-6)
  assert (m.mixup_alpha, m.cutmix_alpha, m.mixup_mode, m.label_smoothing) == (0.8, 1.0, "batch", 0.1)


# (official sizes, from the released checkpoints: ViT-L/14 304 M parameters with its GELU MLP; ViT-g/14 1.1 B)
@pytest.mark.parametrize("arg,encoder,patch,mlp,backbone_millions,prototypes",
                         [("", "vit_large", 14, "swiglu", (300, 320), 131072),
                          ("giant", "vit_giant", 14, "swiglu", (1100, 1140), 131072),
                          ("short", "vit_large", 16, "gelu", (300, 308), 65536)])
def test_dinov2_recipes_are_the_official_files(arg, encoder, patch, mlp, backbone_millions, prototypes):
  import jax
  import jax.numpy as jnp

  from jaxssl import models
  config = _get_config("dinov2", arg)
  validate.validate(config, num_devices=8)
  c, m, o = config.model, config.method, config.optim
  assert (c.encoder, c.patch_size, c.mlp, c.layer_scale, c.drop_path_uniform, c.pool) == (
      encoder, patch, mlp, 1e-5, True, "cls_mean")
  assert (m.out_dim, m.patch_out_dim, m.koleo_weight, m.mask_probability, tuple(m.mask_ratio_range)) == (
      prototypes, prototypes, 0.1, 0.5, (0.1, 0.5))
  assert (o.lr_scaling, o.clip_mode, o.freeze_mode, o.clip_grad_norm) == ("sqrt_1024", "per_group", "zero_lr", 3.0)
  assert config.train.num_steps == (100 if arg == "short" else 500) * 1250
  assert o.warmup_steps == (10 if arg == "short" else 80) * 1250 and o.warmup_epochs == 0
  assert m.teacher_temperature_warmup_steps == 30 * 1250 and m.teacher_temperature_hold_steps == 1
  assert config.train.batch_size % m.group_size == 0
  encoder_module = models.make_encoder(c, 224, None, jnp.float32)
  shapes = jax.eval_shape(lambda: encoder_module.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3))))
  millions = sum(x.size for x in jax.tree.leaves(shapes)) / 1e6
  assert backbone_millions[0] < millions < backbone_millions[1], millions
  if arg == "giant":     # DINOv2's SwiGLUFFNFused: 2 x 4096 for 1536 wide
    assert shapes["params"]["block_0"]["mlp"]["fc1"]["kernel"].shape == (1536, 8192)
  small = _get_config("dinov2", f"{arg},imagenette".lstrip(","))
  validate.validate(small, num_devices=8)


@pytest.mark.slow
def test_dinov2_recipe_runs_sharded_on_eight_devices_on_a_jpeg_folder(jpegs, tmp_path):
  """The ViT-L/14 recipe with its encoder and heads made small, FSDP over 8 simulated devices."""
  config = _get_config("dinov2", "folder")
  config.data.data_dir, config.data.workers = str(jpegs), 2
  config.data.image_size, config.augment.size = 24, 16
  config.model.compute_dtype, config.model.encoder, config.model.patch_size = "float32", "vit_micro", 4
  config.augment.local_size, config.augment.num_local_crops = 8, 2
  m = config.method
  m.proj_hidden_dims, m.bottleneck_dim, m.patch_bottleneck_dim, m.out_dim, m.patch_out_dim = (32,), 8, 8, 32, 32
  m.teacher_temperature_warmup_steps, m.group_size = 1, 1
  config.optim.rules = ((config.optim.rules[0][0], 1.0, 1.0, 1), config.optim.rules[1])
  config.optim.warmup_steps = 1
  config.parallel.fsdp, config.parallel.fsdp_min_size = True, 256
  config.train.batch_size, config.train.num_steps, config.eval.batch_size = 8, 2, 64
  results = train.run(config, str(tmp_path))
  assert math.isfinite(results["final_loss"]) and 0 <= results["knn_accuracy"] <= 1
