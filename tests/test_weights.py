"""Weights from and to timm (jaxssl/weights/, jaxssl/export.py), against small timm models with random weights saved
by timm itself (tests/data/weights/, written by benchmarks/make_weight_fixtures.py in the PyTorch venv): the
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
from jaxssl import export, validate, weights
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
  config.train.num_steps, config.eval.knn_at_init, config.eval.at_end = 2, False, False
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
