"""Weights from and to timm (jaxssl/weights/, jaxssl/export.py), against small timm models with random weights saved
by timm itself (tests/data/weights/, written by benchmarks/peers/make_weight_fixtures.py in the PyTorch venv): the
features jaxssl computes from them equal timm's, and what jaxssl exports holds exactly the tensors, names and
shapes timm's own files hold."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxssl
from jaxssl import export
from jaxssl.schema import validate
from jaxssl.weights import WeightsError
from tiny import tiny_config
from xla_test_flags import cpu_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "data", "weights")
# name -> (pool, registers, feed-forward, class token) as jaxssl reads them
MODELS = {"timm_vit_cls": ("cls", 0, "gelu", True), "timm_dinov2_reg": ("cls", 2, "gelu", True),
          "timm_vit_avg": ("global", 0, "gelu", False), "timm_vit_avg_norm": ("mean", 0, "gelu", False),
          "timm_dinov2_swiglu": ("cls", 0, "swiglu", True)}


def _features(name):
  saved = np.load(os.path.join(FIXTURES, name, "features.npz"))
  return saved["images"].transpose(0, 2, 3, 1), saved["features"]        # NCHW -> NHWC


@pytest.mark.parametrize("name", sorted(MODELS))
def test_timm_folders_load_with_timms_features(name):
  module, variables = jaxssl.load_encoder(os.path.join(FIXTURES, name))
  pool, registers, mlp, class_token = MODELS[name]
  assert (module.pool, module.num_registers, module.mlp, module.class_token) == (pool, registers, mlp, class_token)
  assert bool(module.layer_scale) == ("dinov2" in name)
  images, expected = _features(name)
  np.testing.assert_allclose(module.apply(variables, images, train=False), expected, rtol=1e-4, atol=2e-5)


def test_a_bare_file_needs_its_heads_named():
  path = os.path.join(FIXTURES, "timm_dinov2_reg", "model.safetensors")
  with pytest.raises(WeightsError, match=r"model.safetensors: its number of attention heads is not in its shapes; "
                                         r"name it \(num_heads=, or a timm architecture"):
    jaxssl.load_encoder(path)
  module, variables = jaxssl.load_encoder(path, num_heads=2)
  images, expected = _features("timm_dinov2_reg")
  np.testing.assert_allclose(module.apply(variables, images, train=False), expected, rtol=1e-4, atol=2e-5)
  with pytest.raises(WeightsError, match=r"width 32 is not divisible by 12 heads"):
    jaxssl.load_encoder(path, arch="vit_base_patch16_224")         # ViT-B's 12 heads: not this model's


# transformers' folders: name -> (pool, registers, class token); ViT and ViT-MAE's layernorm epsilon is 1e-12.
HF_MODELS = {"hf_dinov2": ("cls", 0, True), "hf_dinov2_reg": ("cls", 2, True), "hf_vit": ("cls", 0, True),
             "hf_vit_mae": ("cls", 0, True), "hf_ijepa": ("mean", 0, False)}


@pytest.mark.parametrize("name", sorted(HF_MODELS))
def test_transformers_folders_load_with_their_features(name):
  module, variables = jaxssl.load_encoder(os.path.join(FIXTURES, name))
  assert (module.pool, module.num_registers, module.class_token) == HF_MODELS[name]
  images, expected = _features(name)
  np.testing.assert_allclose(module.apply(variables, images, train=False), expected, rtol=1e-4, atol=3e-5)


@pytest.mark.parametrize("name", ["hf_dinov2", "hf_dinov2_reg", "hf_ijepa", "timm_dinov2_swiglu", "timm_vit_cls"])
def test_export_to_transformers_writes_its_own_names_and_reads_back_exactly(name, tmp_path):
  source, out = os.path.join(FIXTURES, name), str(tmp_path / "out")
  assert export.main([source, out, "--format", "transformers"]) == 0
  from safetensors.numpy import load_file

  ours = load_file(os.path.join(out, "model.safetensors"))
  config = json.load(open(os.path.join(out, "config.json")))
  if name.startswith("hf_"):                      # the names and shapes save_pretrained writes, and no others
    theirs = load_file(os.path.join(source, "model.safetensors"))
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    assert config["architectures"] == json.load(open(os.path.join(source, "config.json")))["architectures"]
  (module, variables), (back, again) = jaxssl.load_encoder(source), jaxssl.load_encoder(out)
  images = _features(name)[0]
  np.testing.assert_array_equal(back.apply(again, images, train=False), module.apply(variables, images, train=False))


def test_what_transformers_cannot_hold_is_refused_in_one_line(tmp_path):
  for name, message in (("timm_vit_avg", r"model.pool='global'\) has no transformers counterpart"),
                        ("timm_resnet18", "transformers' folders hold ViTs; this encoder is a ResNet")):
    with pytest.raises(WeightsError, match=message):
      export.export(os.path.join(FIXTURES, name), str(tmp_path / name), format="transformers")
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name", ["timm_resnet50", "timm_resnet18"])
def test_torchvision_named_resnets_load_with_their_features(name):
  module, variables = jaxssl.load_encoder(os.path.join(FIXTURES, name))
  assert (module.padding, module.stem, module.stem_width) == ("torch", "imagenet", 64)
  assert module.block.__name__ == ("BottleneckBlock" if name.endswith("50") else "BasicBlock")
  images, expected = _features(name)
  got = np.asarray(module.apply(variables, images, train=False))
  # Random weights and running statistics make features in the hundreds: compared to their scale.
  np.testing.assert_allclose(got, expected, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("name", sorted(MODELS) + ["timm_resnet50", "timm_resnet18"])
def test_export_writes_timms_own_tensors_and_reads_back_exactly(name, tmp_path):
  source = os.path.join(FIXTURES, name)
  out = str(tmp_path / "out")
  assert export.main([source, out]) == 0
  from safetensors.numpy import load_file

  theirs, ours = load_file(os.path.join(source, "model.safetensors")), load_file(os.path.join(out, "model.safetensors"))
  assert sorted(ours) == sorted(theirs)                  # timm's strict load needs exactly these names
  for key in theirs:
    assert ours[key].shape == theirs[key].shape, key
  if name != "timm_dinov2_reg":                          # the others keep timm's layout tensor for tensor
    for key in theirs:
      np.testing.assert_array_equal(ours[key], theirs[key], err_msg=key)
  config = json.load(open(os.path.join(out, "config.json")))
  assert config["num_classes"] == 0 and (config["model_args"].get("num_heads") == 2 or "resnet" in name)
  (module, variables), (back, again) = jaxssl.load_encoder(source), jaxssl.load_encoder(out)
  assert back == module
  for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(again)):
    np.testing.assert_array_equal(a, b)


def test_a_trained_vit_exports_and_reads_back_bit_exactly(tmp_path):
  from jaxssl import train

  config = tiny_config("dino")
  config.model.encoder, config.model.patch_size, config.augment.local_size = "vit_micro", 4, 8
  config.model.num_registers, config.model.layer_scale, config.model.mlp = 2, 1e-5, "swiglu"
  config.train.num_steps, config.eval.knn_at_init, config.eval.at_end = 3, False, False  # the head trains after 2
  train.run(config, str(tmp_path / "run"))
  module, variables = jaxssl.load_encoder(str(tmp_path / "run"))
  assert export.main([str(tmp_path / "run"), str(tmp_path / "out")]) == 0
  back, again = jaxssl.load_encoder(str(tmp_path / "out"))
  images = np.random.default_rng(0).normal(size=(3, 16, 16, 1)).astype(np.float32)
  np.testing.assert_array_equal(back.apply(again, images, train=False), module.apply(variables, images, train=False))


@pytest.mark.slow
def test_a_trained_resnet_exports_with_torchs_padding_only(tmp_path):
  from jaxssl import train

  config = tiny_config("simclr")
  config.model.encoder, config.model.stem, config.model.padding = "resnet18", "imagenet", "torch"
  config.data.synthetic_channels, config.data.mean, config.data.std = 3, (0.5,) * 3, (0.25,) * 3
  config.train.num_steps, config.eval.knn_at_init, config.eval.at_end = 1, False, False
  train.run(config, str(tmp_path / "run"))
  module, variables = jaxssl.load_encoder(str(tmp_path / "run"))
  assert export.main([str(tmp_path / "run"), str(tmp_path / "out")]) == 0
  back, again = jaxssl.load_encoder(str(tmp_path / "out"))
  images = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(back.apply(again, images, train=False), module.apply(variables, images, train=False))
  config = tiny_config("simclr")                        # Flax's SAME padding and the CIFAR stem
  config.train.num_steps, config.eval.knn_at_init, config.eval.at_end = 1, False, False
  train.run(config, str(tmp_path / "same"))
  with pytest.raises(WeightsError, match=r"the 'cifar' stem \(a 3x3 convolution, no max-pool\) has no torchvision "
                                         r"counterpart"):
    export.export(str(tmp_path / "same"), str(tmp_path / "same_out"))
  assert not (tmp_path / "same_out").exists()


def _damaged(tmp_path, name="timm_vit_cls"):
  folder = tmp_path / name
  shutil.copytree(os.path.join(FIXTURES, name), folder)
  return folder


def test_bad_weights_are_one_line(tmp_path):
  folder = _damaged(tmp_path)
  data = (folder / "model.safetensors").read_bytes()
  (folder / "model.safetensors").write_bytes(data[:len(data) // 2])
  with pytest.raises(WeightsError, match=r"model.safetensors: not a readable safetensors file \(.*\): truncated or "
                                         r"damaged\?$"):
    jaxssl.load_encoder(str(folder))
  (folder / "model.safetensors").unlink()
  with pytest.raises(WeightsError, match=r"timm_vit_cls: a folder without weights \(none of model.safetensors, "):
    jaxssl.load_encoder(str(folder))
  np.savez(tmp_path / "objects.npz", a=np.array([{"x": 1}], dtype=object))
  with pytest.raises(WeightsError, match=r"objects.npz: not a readable .npz archive \(it holds Python objects, which "
                                         r"are never unpickled\)"):
    jaxssl.load_encoder(str(tmp_path / "objects.npz"))
  np.savez(tmp_path / "resnet.npz", **{"conv1.weight": np.zeros((8, 3, 3, 3), np.float32)})
  with pytest.raises(WeightsError, match=r"resnet.npz: neither a timm ViT \(patch_embed.proj.weight, blocks.\*\) nor "
                                         r"a torchvision-named ResNet \(conv1.weight, layer1.\*\) state dict; it has "
                                         r"conv1.weight, ..."):
    jaxssl.load_encoder(str(tmp_path / "resnet.npz"))
  from safetensors.numpy import load_file, save_file

  tensors = load_file(os.path.join(FIXTURES, "timm_vit_cls", "model.safetensors"))
  save_file({**tensors, "blocks.0.attn.q_norm.weight": np.ones(16, np.float32)}, str(tmp_path / "extra.safetensors"))
  with pytest.raises(WeightsError, match=r"1 tensor\(s\) that jaxssl's ViT has no place for, e.g. "
                                         r"blocks.0.attn.q_norm.weight \(another architecture\?\)"):
    jaxssl.load_encoder(str(tmp_path / "extra.safetensors"), num_heads=2)
  save_file({k: v for k, v in tensors.items() if k != "blocks.1.norm2.bias"}, str(tmp_path / "missing.safetensors"))
  with pytest.raises(WeightsError, match=r"missing.safetensors: no tensor 'blocks.1.norm2.bias'"):
    jaxssl.load_encoder(str(tmp_path / "missing.safetensors"), num_heads=2)
  with pytest.raises(WeightsError, match=r"step=3: .* is a weights file or folder, which has no steps"):
    jaxssl.load_encoder(os.path.join(FIXTURES, "timm_vit_cls"), step=3)
  (tmp_path / "weights.pth").write_bytes(b"not a pickle")
  with pytest.raises(WeightsError, match=r"weights.pth: "):
    jaxssl.load_encoder(str(tmp_path / "weights.pth"))


@pytest.mark.slow
def test_the_export_command_is_one_line_for_bad_input(tmp_path):
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  command = lambda *args: subprocess.run([sys.executable, "-m", "jaxssl.export", *args], cwd=ROOT, env=env,  # noqa: E731
                                         capture_output=True, text=True, timeout=300)
  taken = tmp_path / "taken"
  taken.mkdir()
  for args, message in ((["tests/data/weights/timm_vit_cls", str(taken)], f"error: {taken} exists: export writes a "
                         "new folder (remove it, or name another)"),
                        ([str(tmp_path / "nothing"), str(tmp_path / "out")], "has no config.json: not a jaxssl run "
                         "directory"),
                        (["tests/data/weights/timm_vit_cls"], "error: the following arguments are required: out"),
                        (["a", "b", "--format", "onnx"], "error: argument --format: invalid choice: 'onnx'")):
    result = command(*args)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr[-2000:]
  assert not (tmp_path / "out").exists() and not os.listdir(taken)
  result = command("tests/data/weights/timm_dinov2_reg", str(tmp_path / "out"))
  assert result.returncode == 0 and f"wrote {tmp_path / 'out'}" in result.stdout, result.stderr[-2000:]


def test_the_new_vit_fields_are_checked():
  config = tiny_config("dino")
  config.model.encoder, config.model.patch_size, config.augment.local_size = "vit_micro", 4, 8
  for field, value, message in (("class_token", False, "config.model.pool='cls': there is no class token"),
                                ("mlp", "geglu", "config.model.mlp='geglu': use one of 'gelu', 'swiglu'"),
                                ("num_registers", -1, "config.model.num_registers=-1: must be a non-negative integer")):
    bad = tiny_config("dino")
    bad.model.encoder, bad.model.patch_size, bad.augment.local_size = "vit_micro", 4, 8
    bad.model[field] = value
    with pytest.raises(validate.ConfigError, match=f"^{message}"):
      validate.validate(bad, num_devices=8)
  config.model.class_token, config.model.pool = False, "mean"
  validate.validate(config, num_devices=8)
  mae = tiny_config("mae")
  mae.model.class_token, mae.model.pool = False, "mean"
  with pytest.raises(validate.ConfigError, match=r"^config.model.class_token=False: MAE's decoder takes the "):
    validate.validate(mae, num_devices=8)
  resnet = tiny_config("simclr")
  resnet.model.num_registers = 4
  with pytest.raises(validate.ConfigError, match=r"^config.model.num_registers=4: only ViTs read it"):
    validate.validate(resnet, num_devices=8)
  resnet = tiny_config("simclr")
  resnet.model.padding = "valid"
  with pytest.raises(validate.ConfigError, match=r"^config.model.padding='valid': use one of 'same', 'torch'"):
    validate.validate(resnet, num_devices=8)
  config.model.padding = "torch"
  with pytest.raises(validate.ConfigError, match=r"^config.model.padding='torch': only ResNets read it"):
    validate.validate(config, num_devices=8)


# ----------------------------------------------------------------------------------------------------------------
# Runs that start from imported weights (model.init_from; python -m jaxssl.finetune --pretrained WEIGHTS).

MICRO = os.path.join(FIXTURES, "timm_vit_micro")


def test_position_tables_are_resized_as_timm_resizes_them():
  module, variables = jaxssl.load_encoder(MICRO, image_size=28)          # made for 4x4 patches, used at 7x7
  saved = np.load(os.path.join(MICRO, "features_28px.npz"))
  assert module.base_grid == 7
  np.testing.assert_allclose(module.apply(variables, saved["images"].transpose(0, 2, 3, 1), train=False),
                             saved["features"], rtol=1e-4, atol=2e-5)


def _micro_config(method):
  config = tiny_config(method)
  config.model.encoder, config.model.patch_size = "vit_micro", 4
  if method == "dino":
    config.augment.local_size = 8
  config.model.init_from = MICRO
  return config


def test_a_fine_tuning_starts_from_imported_weights_fitted_to_its_images():
  from jaxssl import train
  from jaxssl.engine import train_step
  from jaxssl.weights import init_from

  config = _micro_config("classifier")
  config.method.init = "pretrained"
  config.augment.size = config.data.synthetic_size = 28               # a 7x7 grid: positions resized
  validate.validate(config, num_devices=8)
  trainer = train_step.build(config, total_steps=2, num_classes=10)
  fresh = train_step.init_state(trainer, jax.random.key(0), 1)          # grey images: 1 channel
  started = train.warm_start(trainer, fresh, init_from.starter(config, 1)).params["encoder"]
  _, imported = jaxssl.load_encoder(MICRO, image_size=28)
  theirs = imported["params"]
  np.testing.assert_allclose(started["patch_embed"]["kernel"], theirs["patch_embed"]["kernel"].sum(2, keepdims=True),
                             rtol=1e-6)                                  # timm's adapt_input_conv for 1 channel
  np.testing.assert_allclose(started["pos_embed"], theirs["pos_embed"], rtol=1e-6)   # the 7x7 table, resized once
  np.testing.assert_array_equal(started["block_3"]["mlp"]["fc2"]["kernel"], theirs["block_3"]["mlp"]["fc2"]["kernel"])
  # On grey images the summed kernel sees what the RGB one sees on three equal channels.
  module, _ = jaxssl.load_encoder(MICRO, image_size=28)
  grey = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype(np.float32)
  mine = module.clone(pool="cls").apply({"params": started}, grey, train=False)
  np.testing.assert_allclose(mine, module.apply(imported, np.repeat(grey, 3, -1), train=False), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_a_pretraining_run_starts_from_imported_weights_and_its_teacher_too(tmp_path, capsys):
  from jaxssl import train
  from jaxssl.engine import train_step
  from jaxssl.runs.restore import load_run
  from jaxssl.weights import init_from

  config = _micro_config("dino")
  config.train.num_steps, config.eval.knn_at_init, config.eval.at_end = 1, False, False
  # One step: no frozen head and no teacher warm-up (schedules that outlast a run are refused).
  config.optim.rules, config.method.teacher_temperature_warmup_steps = (), 0
  trainer = train_step.build(config, total_steps=1, num_classes=10)
  start = train.warm_start(trainer, train_step.init_state(trainer, jax.random.key(0), 1), init_from.starter(config, 1))
  for a, b in zip(jax.tree.leaves(start.params["encoder"]), jax.tree.leaves(start.ema_params["encoder"])):
    np.testing.assert_array_equal(a, b)                                 # the teacher starts where the student does
  train.run(config, str(tmp_path / "run"))
  assert "init_from: encoder from " in capsys.readouterr().out
  run = load_run(str(tmp_path / "run"))
  moved = np.abs(np.asarray(run.state.params["encoder"]["block_0"]["attn"]["qkv"]["kernel"]) -
                 np.asarray(start.params["encoder"]["block_0"]["attn"]["qkv"]["kernel"])).max()
  assert 0 < moved < 0.05                                               # one step from the imported weights


@pytest.mark.slow
def test_a_sharded_run_places_the_imported_weights_shard_by_shard():
  from helpers import mesh
  from jaxssl import train
  from jaxssl.engine import train_step
  from jaxssl.weights import init_from

  config = _micro_config("dino")
  config.parallel.fsdp, config.parallel.fsdp_min_size = True, 256
  trainer = train_step.build(config, total_steps=2, num_classes=10)
  m, starter = mesh(8), init_from.starter(config, 1)
  made = train.warm_start_sharded(config, trainer, train.init_sharded(config, trainer, jax.random.key(0), 1, m), m,
                                  starter)
  expected = train.warm_start(trainer, train_step.init_state(trainer, jax.random.key(0), 1), starter)
  for a, b, sharding in zip(jax.tree.leaves(made), jax.tree.leaves(expected),
                            jax.tree.leaves(train.state_shardings(config, expected, m))):
    assert a.sharding == sharding
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=3e-7, atol=1e-9)
  for a, b in zip(jax.tree.leaves(made.params["encoder"]), jax.tree.leaves(expected.params["encoder"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert any(not leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(made.params["encoder"]))


def test_a_config_that_differs_from_the_weights_is_one_line_before_the_workdir():
  from jaxssl import train
  from jaxssl.common.config_checks import ConfigError

  for field, value, message in (("patch_size", 2, "config.model.patch_size=2: the weights in model.init_from="),
                                ("num_registers", 4, "config.model.num_registers=4: the weights in model.init_from"),
                                ("encoder", "vit_tiny", "config.model.encoder='vit_tiny': the weights in ")):
    config = _micro_config("dino")
    config.model[field] = value
    with pytest.raises(ConfigError, match=f"^{message}"):
      train.run(config, "/nonexistent/never/run")
  config = _micro_config("dino")
  config.model.init_from = "/no/such/weights.safetensors"
  with pytest.raises(ConfigError, match=r"^config.model.init_from='/no/such/weights.safetensors': no such weights "):
    validate.validate(config, num_devices=8)


@pytest.mark.slow
def test_finetune_from_a_timm_folder_then_export(tmp_path):
  """The README's example: an encoder imported from a timm folder, fine-tuned with python -m jaxssl.finetune,
  exported, read back with the same features (timm's side of the export is checked in the PyTorch venv:
  benchmarks/parity/weights_parity.py)."""
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  tiny = ["--config.data.source=synthetic", "--config.data.synthetic_size=16", "--config.augment.size=16",
          "--config.train.batch_size=16", "--config.train.num_steps=2"]
  result = subprocess.run([sys.executable, "-m", "jaxssl.finetune", "--config=configs/finetune_vit.py",
                           f"--pretrained={MICRO}", f"--workdir={tmp_path / 'ft'}", *tiny], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "fine-tuning (pretrained): from the weights in " in result.stdout and "init_from: encoder from " in (
      result.stdout)
  assert export.main([str(tmp_path / "ft"), str(tmp_path / "out")]) == 0
  (module, variables), (back, again) = jaxssl.load_encoder(str(tmp_path / "ft")), jaxssl.load_encoder(
      str(tmp_path / "out"))
  images = np.random.default_rng(0).normal(size=(2, 16, 16, 1)).astype(np.float32)
  np.testing.assert_array_equal(back.apply(again, images, train=False), module.apply(variables, images, train=False))


# ----------------------------------------------------------------------------------------------------------------
# The official repositories' checkpoints (torch.save'd dicts, read here without PyTorch).

OFFICIAL = {"official_mae": ("cls", 0), "official_dino": ("cls", 0), "official_dinov2_reg": ("cls", 2),
            "official_ijepa": ("mean", 0)}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_checkpoints_load_the_encoder_the_method_evaluates(name):
  path = os.path.join(FIXTURES, name, "checkpoint.pth")
  module, variables = jaxssl.load_encoder(path, num_heads=2)
  assert (module.pool, module.num_registers) == OFFICIAL[name]
  images, expected = _features(name)
  np.testing.assert_allclose(module.apply(variables, images, train=False), expected, rtol=1e-4, atol=2e-5)


def test_another_entry_of_an_official_checkpoint_is_named_by_part():
  path = os.path.join(FIXTURES, "official_dino", "checkpoint.pth")
  images, teacher_features = _features("official_dino")
  module, variables = jaxssl.load_encoder(path, num_heads=2, part="student")     # the student differs
  assert np.abs(np.asarray(module.apply(variables, images, train=False)) - teacher_features).max() > 0.1
  with pytest.raises(WeightsError, match=r"checkpoint.pth: no state dict under 'predictor_ema' \(it holds: args, "
                                         r"epoch, student, teacher\)"):
    jaxssl.load_encoder(path, num_heads=2, part="predictor_ema")


class NotATensor:
  """A class a malicious pickle could name."""


def test_a_pytorch_file_that_needs_other_code_is_refused(tmp_path):
  import pickle
  import zipfile

  path = tmp_path / "evil.pth"
  with zipfile.ZipFile(path, "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"weights": NotATensor()}, protocol=2))
  with pytest.raises(WeightsError, match=r"evil.pth: its pickle needs test_weights.NotATensor to load, which jaxssl "
                                         r"never unpickles \(only tensors, plain containers and argparse.Namespace\)"):
    jaxssl.load_encoder(str(path))
  data = (tmp_path / "evil.pth").read_bytes()
  source = os.path.join(FIXTURES, "official_mae", "checkpoint.pth")
  (tmp_path / "cut.pth").write_bytes(open(source, "rb").read()[:4000])
  with pytest.raises(WeightsError, match=r"cut.pth: not a readable PyTorch file \(a zip archive without its central "
                                         r"directory\): truncated or damaged\?"):
    jaxssl.load_encoder(str(tmp_path / "cut.pth"), num_heads=2)
  assert data
