"""MAE pretraining continued from the official checkpoint, decoder included (jaxssl/weights/mae_decoder.py): a
main_pretrain.py checkpoint at configs/mae.py's sizes (tests/data/weights/official_mae_micro, written by
benchmarks/peers/make_weight_fixtures.py from a transcription of models_mae.py) gives, through
``--config.model.init_from``, the official forward's predictions and loss on the same images and masking
noise."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tiny import tiny_config

from jaxssl import train
from jaxssl.engine import train_step
from jaxssl.models.vit import patchify
from jaxssl.ops import losses, masking
from jaxssl.schema import validate
from jaxssl.weights import init_from

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "weights", "official_mae_micro")
CHECKPOINT = os.path.join(FIXTURE, "checkpoint.pth")


def _config():
  """configs/mae.py's model (vit_micro, 4 px patches, decoder 64 wide, 2 blocks, 4 heads) at 28 px."""
  config = tiny_config("mae")
  config.model.encoder, config.model.patch_size = "vit_micro", 4
  config.augment.size = config.data.synthetic_size = 28
  config.method.decoder_dim, config.method.decoder_depth, config.method.decoder_heads = 64, 2, 4
  config.model.init_from = CHECKPOINT
  return config


def _started(config, channels, capsys=None):
  init_from.check(config)
  trainer = train_step.build(config, total_steps=1, num_classes=10)
  fresh = train_step.init_state(trainer, jax.random.key(0), channels)
  return trainer, train.warm_start(trainer, fresh, init_from.starter(config, channels))


def test_the_official_checkpoint_continues_with_the_official_forward(capsys):
  trainer, state = _started(_config(), 3)
  assert "init_from: encoder and MAE decoder from " in capsys.readouterr().out
  saved = np.load(os.path.join(FIXTURE, "forward.npz"))
  images = jnp.asarray(saved["images"].transpose(0, 2, 3, 1))
  masks = masking.random_masking(jnp.asarray(saved["noise"]), 0.75)           # the official code's masks
  np.testing.assert_array_equal(masks.mask, saved["mask"])
  predicted = trainer.model.apply({"params": state.params}, images, masks)
  np.testing.assert_allclose(predicted, saved["pred"], rtol=1e-4, atol=2e-5)
  loss = losses.mae_loss(predicted, patchify(images, 4), masks.mask, True)
  np.testing.assert_allclose(float(loss), float(saved["loss"]), rtol=1e-5)


def test_a_grey_run_predicts_the_mean_of_the_decoders_three_channels(capsys):
  trainer, grey_state = _started(_config(), 1)
  assert "its decoder's predictions of 3 channels averaged into 1" in capsys.readouterr().out
  trainer3, colour_state = _started(_config(), 3)
  grey = jnp.asarray(np.random.default_rng(0).normal(size=(2, 28, 28, 1)), jnp.float32)
  masks = masking.random_masking(jnp.asarray(np.random.default_rng(1).random((2, 49)), jnp.float32), 0.75)
  mine = trainer.model.apply({"params": grey_state.params}, grey, masks)
  colour = trainer3.model.apply({"params": colour_state.params}, jnp.repeat(grey, 3, -1), masks)
  np.testing.assert_allclose(mine, colour.reshape(2, 49, 16, 3).mean(-1), rtol=1e-4, atol=2e-5)


def test_a_decoder_that_differs_from_the_config_is_one_line():
  config = _config()
  config.method.decoder_depth = 1
  with pytest.raises(validate.ConfigError, match=r"^config.method.decoder_depth=1: the MAE decoder in model.init_from="
                                                 r"'.*checkpoint.pth' has 2: set it, or start from the encoder alone"):
    init_from.check(config)


def test_an_encoder_alone_starts_mae_with_a_new_decoder(capsys):
  config = _config()
  config.model.init_from = os.path.join(FIXTURE, "..", "timm_vit_micro")
  _started(config, 3)
  out = capsys.readouterr().out
  assert "init_from: encoder from " in out and "no MAE decoder in it: the decoder starts new" in out


def test_a_decoder_that_fits_no_patch_of_the_run_is_one_line():
  from jaxssl.weights import files, mae_decoder, official
  from jaxssl.weights.files import WeightsError

  decoder = official.mae_decoder(files.read(CHECKPOINT)[0], CHECKPOINT)
  with pytest.raises(WeightsError, match=r"checkpoint.pth: decoder_pred has 48 outputs, which are no whole number "
                                         r"of channels of 5x5 patches \(model.patch_size=5\)$"):
    mae_decoder.to_jaxssl(decoder, CHECKPOINT, 1, 5)
  with pytest.raises(WeightsError, match=r"checkpoint.pth: its decoder predicts 3-channel patches and these images "
                                         r"have 2$"):
    mae_decoder.to_jaxssl(decoder, CHECKPOINT, 2, 4)
