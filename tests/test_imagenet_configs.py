"""The ImageNet recipes (configs/*_imagenet.py): valid as written for ImageNet and Imagenette, and a few training
steps on a generated JPEG folder with the encoder made small by override, cropped on the host."""

import importlib.util
import math
import os

import pytest

import helpers
from jaxssl import data, optim, train, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("simclr", "byol", "vicreg", "dino", "ibot")


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
  assert config.augment.size == 224 and config.model.encoder in ("resnet50", "vit_small")
  # The warm-up is 10 epochs of ImageNet at the paper's batch.
  steps_per_epoch = 1_281_167 // config.train.batch_size
  assert optim.warmup_steps(config, steps_per_epoch) == round(10 * steps_per_epoch)
  small = _get_config(method, "imagenette")
  validate.validate(small, num_devices=8)
  assert small.data.dataset == "imagenette/full-size-v2" and small.train.batch_size == 256
  with pytest.raises(ValueError, match="config argument 'imagenet': use one of"):
    _get_config(method, "imagenet")


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
  return helpers.jpeg_splits(tmp_path_factory.mktemp("imagenet_like"), {"train": 16, "validation": 8})


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_a_few_steps_on_a_jpeg_folder(method, jpegs, tmp_path):
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
  else:
    config.model.encoder, config.model.stem = "small_resnet", "cifar"
    config.method.proj_hidden_dims, config.method.proj_dim = (32,), 16
    if "pred_hidden_dims" in config.method:
      config.method.pred_hidden_dims = (32,)
  config.train.batch_size, config.train.num_steps, config.eval.batch_size = 8, 2, 64
  results = train.run(config, str(tmp_path))
  assert math.isfinite(results["final_loss"]) and 0 <= results["knn_accuracy"] <= 1


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


@pytest.mark.slow
def test_mae_a_few_steps_on_a_jpeg_folder(jpegs, tmp_path):
  config = _get_config("mae", "folder")
  config.data.data_dir, config.data.workers = str(jpegs), 2
  config.data.image_size, config.augment.size = 24, 16
  config.model.compute_dtype, config.model.encoder, config.model.patch_size = "float32", "vit_micro", 4
  config.method.decoder_dim, config.method.decoder_depth, config.method.decoder_heads = 32, 1, 2
  config.train.batch_size, config.train.num_steps, config.eval.batch_size = 8, 2, 64
  results = train.run(config, str(tmp_path))
  assert math.isfinite(results["final_loss"]) and 0 <= results["knn_accuracy"] <= 1


def test_dino_recipe_clips_each_parameter_and_schedules_the_weight_decay_as_the_official_code():
  config = _get_config("dino")
  validate.validate(config, num_devices=8)
  o = config.optim
  assert (o.name, o.base_lr, o.min_lr, o.b1, o.b2) == ("adamw", 0.0005, 1e-6, 0.9, 0.999)
  assert (o.weight_decay, o.weight_decay_end, o.clip_grad_norm, o.clip_mode) == (0.04, 0.4, 3.0, "per_parameter")
  steps_per_epoch = 1_281_167 // 1024
  assert o.rules == (("projector/last_layer(/.*)?", 1.0, 1.0, steps_per_epoch),)
  schedule = optim.weight_decay_schedule(config, 100 * steps_per_epoch)
  assert float(schedule(0)) == pytest.approx(0.04) and float(schedule(100 * steps_per_epoch)) == pytest.approx(0.4)


@pytest.mark.parametrize("arg,encoder,patch,decay,drop,epochs", [
    ("", "vit_base", 16, 0.65, 0.1, 100), ("large", "vit_large", 16, 0.75, 0.2, 50),
    ("huge,imagenette", "vit_huge", 14, 0.75, 0.3, 50)])
def test_vit_fine_tuning_recipe_is_maes(arg, encoder, patch, decay, drop, epochs):
  config = _get_config("finetune_vit", arg)
  validate.validate(config, num_devices=8)
  m, o = config.method, config.optim
  assert (config.model.encoder, config.model.patch_size, config.model.pool) == (encoder, patch, "mean")
  assert (o.layer_decay, config.model.drop_path_rate, config.train.num_epochs) == (decay, drop, epochs)
  batch = 256 if "imagenette" in arg else 1024
  assert (o.name, o.base_lr, o.min_lr, o.weight_decay, config.train.batch_size) == ("adamw", 5e-4, 1e-6, 0.05, batch)
  assert (m.label_smoothing, m.mixup_alpha, m.cutmix_alpha, m.erase_prob) == (0.1, 0.8, 1.0, 0.25)
  assert (config.augment.randaugment_layers, config.augment.randaugment_magnitude) == (2, 9.0)
  assert m.num_classes == (10 if "imagenette" in arg else 1000)
