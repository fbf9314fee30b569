"""MAE through the trainer: 8 devices = 1, the masked encoder sees only the kept patches, the whole loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl import methods, train
from jaxssl.engine import train_step
from jaxssl.methods import mae
from jaxssl.methods.base import StepInputs, Variables
from jaxssl.models.vit import patchify
from jaxssl.schema import validate
from test_train import _assert_trees_close, _batches, _run_shard_map
from tiny import tiny_config


def test_mae_trains_the_same_on_eight_devices_as_on_one():
  config = tiny_config("mae")
  batches = _batches(config, 3)
  state8, losses8, _ = _run_shard_map(config, batches, 8)
  state1, losses1, _ = _run_shard_map(config, batches, 1)
  assert all(np.isfinite(losses8)) and state8.ema_params is None
  np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
  _assert_trees_close(state8.params, state1.params, 1e-5)
  assert set(state8.params) == {"encoder", "decoder_embed", "mask_token", "decoder_block_0", "decoder_norm",
                                "decoder_pred"}


def test_mae_loss_reads_only_the_removed_patches_and_the_masks_follow_the_keys():
  config = tiny_config("mae")
  trainer = train_step.build(config, total_steps=3, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  images = jnp.asarray(np.random.default_rng(0).normal(size=(4, 16, 16, 1)), jnp.float32)
  keys = jax.random.split(jax.random.key(1), 4)
  inputs = StepInputs([images], keys, jnp.zeros((4,), jnp.int32), jnp.zeros((), jnp.int32), (), None)
  online = Variables(state.params, state.batch_stats)
  out = trainer.method.loss(trainer.model, online, None, inputs)
  masks = mae.masks_for(keys, 16, 0.75)
  assert masks.ids_keep.shape == (4, 4)                         # int(16 * 0.25) visible patches
  # Changing the pixels of a removed patch changes the loss, as a target. Not by a constant: the targets are
  # normalised per patch (norm_pix_loss), so a brightness shift of one patch is invisible to the loss.
  removed = int(np.flatnonzero(np.asarray(masks.mask[0]) == 1)[0])
  row, col = divmod(removed, 4)
  ramp = jnp.linspace(0.0, 2.0, 16).reshape(4, 4, 1)
  changed = images.at[0, 4 * row:4 * row + 4, 4 * col:4 * col + 4].add(ramp)
  other = trainer.method.loss(trainer.model, online, None, inputs._replace(views=[changed]))
  assert abs(float(other.loss) - float(out.loss)) > 1e-4
  predictions = trainer.model.apply({"params": state.params}, images, masks)
  assert predictions.shape == patchify(images, 4).shape == (4, 16, 16)
  # Other keys, other masks, another loss.
  again = trainer.method.loss(trainer.model, online, None, inputs._replace(keys=jax.random.split(jax.random.key(2), 4)))
  assert float(again.loss) != float(out.loss)


def test_mae_config_is_valid_and_refuses_a_resnet_or_a_mask_that_keeps_nothing():
  config = tiny_config("mae")
  validate.validate(config, num_devices=8)
  config.model.encoder = "small_resnet"
  config.model.pos_embed, config.model.weight_init = "learned", "dino"
  with pytest.raises(validate.ConfigError,
                     match=r"^config.model.encoder='small_resnet': MAE masks patches: use a ViT \(vit_\*\)$"):
    validate.validate(config, num_devices=8)
  config = tiny_config("mae")
  config.method.mask_ratio = 0.99
  with pytest.raises(validate.ConfigError, match=r"^config.method.mask_ratio=0.99: keeps no patch of the 16 "):
    validate.validate(config, num_devices=8)
  for ratio in (0.0, 0.05):                  # int(16 * 0.95) = 15 keeps one out; 0 masks none (a 0 / 0 loss)
    config.method.mask_ratio = ratio
    if ratio:
      validate.validate(config, num_devices=8)
    else:
      with pytest.raises(validate.ConfigError, match=r"^config.method.mask_ratio=0.0: masks no patch of the 16 in a "
                                                     r"view: MAE's loss is over the masked patches$"):
        validate.validate(config, num_devices=8)


@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
def test_mae_runs_the_whole_loop_with_knn_on_full_images(tmp_path, capsys):
  config = tiny_config("mae")
  assert not config.eval.online_probe                          # MAE's defaults turn it off; the run still says why
  results = train.run(config, str(tmp_path / "run"))
  out = capsys.readouterr().out
  assert "online probe: off for method 'mae'" in out
  assert results["steps"] == 3 and np.isfinite(results["final_loss"])
  assert 0.0 <= results["knn_accuracy"] <= 1.0 and "probe_acc" not in results
  assert "mae" in methods.names()

  # The encoder read back: the full image's class token.
  import jaxssl
  module, variables = jaxssl.load_encoder(str(tmp_path / "run"))
  assert module.apply(variables, jnp.zeros((3, 16, 16, 1)), train=False).shape == (3, 64)

  # The reconstruction picture, and what it shows: the visible patches as they were, the removed ones predicted.
  from jaxssl import plot
  from jaxssl.runs.restore import load_run
  assert plot.main([f"--workdir={tmp_path / 'run'}", "--points=40"]) == 0
  assert (tmp_path / "run" / "plots" / "reconstruction.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  run = load_run(str(tmp_path / "run"))
  images = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 1)), jnp.float32)
  reconstruct = mae.reconstruction(run.config)       # the method's picture (methods.reconstruction finds it)
  assert methods.reconstruction(run.config) is not None
  removed, rebuilt = reconstruct(run.trainer.model, Variables(run.state.params, {}), images,
                                 jax.random.split(jax.random.key(0), 2))
  kept = np.asarray(removed) == 0
  assert kept.mean() == 0.25
  np.testing.assert_allclose(np.asarray(rebuilt)[kept], np.asarray(images)[kept], atol=1e-6)
  assert not np.allclose(np.asarray(rebuilt)[~kept], np.asarray(images)[~kept], atol=1e-2)
