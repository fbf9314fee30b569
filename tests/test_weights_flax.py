"""Google's Flax ViT checkpoints (.npz: big_vision's names, scanned or not, and the ViT paper's) read by
jaxssl.load_encoder and written by ``python -m jaxssl.export --format npz``. The fixtures hold the timm fixtures'
weights in those layouts (benchmarks/peers/make_weight_fixtures.py); their features are timm's after timm's own
``_load_weights`` read the file."""

import os

import numpy as np
import pytest

import jaxssl
from jaxssl import weights
from jaxssl.weights import WeightsError

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "weights")
# name -> (pool, class token) as jaxssl reads them
NPZ = {"big_vision_vit_cls": ("cls", True), "vit_jax_vit_cls": ("cls", True), "big_vision_vit_gap": ("mean", False)}


def _fixture(name):
  saved = np.load(os.path.join(FIXTURES, name, "features.npz"))
  return os.path.join(FIXTURES, name, "model.npz"), saved["images"].transpose(0, 2, 3, 1), saved["features"]


@pytest.mark.parametrize("name", sorted(NPZ))
def test_flax_checkpoints_load_with_timms_features(name):
  path, images, expected = _fixture(name)
  module, variables = jaxssl.load_encoder(path)              # the heads from the attention kernels' shapes
  assert (module.pool, module.class_token, module.num_heads) == (*NPZ[name], 2)
  np.testing.assert_allclose(module.apply(variables, images, train=False), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["big_vision_vit_cls", "big_vision_vit_gap"])
def test_export_to_npz_reads_back_exactly(name, tmp_path):
  path, images, _ = _fixture(name)
  module, variables = jaxssl.load_encoder(path)
  out = weights.export(module, variables, str(tmp_path / "vit.npz"), 3, "npz")
  written = np.load(out)
  assert "params/embedding/kernel" in written.files and "params/Transformer/encoderblock_1/MlpBlock_0/Dense_1/bias" \
      in written.files
  again, variables_again = jaxssl.load_encoder(out)
  assert again == module
  np.testing.assert_array_equal(again.apply(variables_again, images, train=False),
                                module.apply(variables, images, train=False))
  with pytest.raises(WeightsError, match=r"vit.npz exists: export writes a new file \(remove it, or name another\)"):
    weights.export(module, variables, out, 3, "npz")


def test_what_big_vision_cannot_hold_is_refused_in_one_line(tmp_path):
  module, variables = jaxssl.load_encoder(os.path.join(FIXTURES, "timm_dinov2_reg"))
  with pytest.raises(WeightsError, match=r"^big_vision's ViT has no registers, LayerScale: export this encoder to "
                                         r"timm or transformers$"):
    weights.export(module, variables, str(tmp_path / "reg.npz"), 3, "npz")
  with pytest.raises(WeightsError, match=r"reg: big_vision's format is one .npz file: name it so \(e.g. .*reg.npz\)"):
    weights.export(module, variables, str(tmp_path / "reg"), 3, "npz")
  assert not os.listdir(tmp_path)


def test_bad_flax_checkpoints_are_one_line(tmp_path):
  path, _, _ = _fixture("big_vision_vit_gap")
  arrays = dict(np.load(path))
  gone = "params/Transformer/encoderblock_1/LayerNorm_1/bias"
  np.savez(tmp_path / "missing.npz", **{k: v for k, v in arrays.items() if k != gone})
  with pytest.raises(WeightsError, match=rf"missing.npz: no tensor '{gone[len('params/'):]}'"):
    jaxssl.load_encoder(str(tmp_path / "missing.npz"))
  np.savez(tmp_path / "map.npz", **arrays, **{"params/MAPHead_0/probe": np.zeros((1, 1, 32), np.float32)})
  with pytest.raises(WeightsError, match=r"map.npz: pooled by a MAP head \(MAPHead_0, attention pooling\), which "):
    jaxssl.load_encoder(str(tmp_path / "map.npz"))
  np.savez(tmp_path / "extra.npz", **arrays, **{"params/Transformer/encoderblock_0/LayerScale_0/scale": np.ones(32)})
  with pytest.raises(WeightsError, match=r"extra.npz: 1 tensor\(s\) that jaxssl's ViT has no place for, e.g. "
                                         r"Transformer/encoderblock_0/LayerScale_0/scale"):
    jaxssl.load_encoder(str(tmp_path / "extra.npz"))
