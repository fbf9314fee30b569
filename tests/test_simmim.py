"""SimMIM against a transcription of the official code (microsoft/SimMIM): ``MaskGenerator``'s masks in form and
distribution, ``SimMIM.forward``'s loss on the same outputs (values and gradients), the method's whole loss on
its network, the mask token inside the encoder, 8 devices against 1, and the config checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.engine import train_step
from jaxssl.methods import simmim
from jaxssl.methods.base import StepInputs, Variables
from jaxssl.models.vit import patchify, unpatchify
from jaxssl.ops import losses
from helpers import Steps, assert_refused, on_devices, synthetic_batches
from tiny import tiny_config


def _official_mask(rng, input_size, mask_patch_size, model_patch_size, mask_ratio):
  """``MaskGenerator.__call__``, line by line (with a numpy Generator in place of np.random)."""
  rand_size = input_size // mask_patch_size
  scale = mask_patch_size // model_patch_size
  token_count = rand_size ** 2
  mask_count = int(np.ceil(token_count * mask_ratio))
  mask_idx = rng.permutation(token_count)[:mask_count]
  mask = np.zeros(token_count, dtype=int)
  mask[mask_idx] = 1
  mask = mask.reshape((rand_size, rand_size))
  return mask.repeat(scale, axis=0).repeat(scale, axis=1)


def _official_loss(x, x_rec, mask, patch_size, in_chans):
  """``SimMIM.forward`` after the decoder, in jax.numpy on NCHW arrays: the mask upsampled to pixels."""
  mask = jnp.repeat(jnp.repeat(mask, patch_size, axis=1), patch_size, axis=2)[:, None]
  loss_recon = jnp.abs(x - x_rec)
  return (loss_recon * mask).sum() / (mask.sum() + 1e-5) / in_chans


def test_masks_are_the_official_generators_in_form_and_distribution():
  """A 224 px view in 16 px patches, 32 px squares: 49 squares, ceil(29.4) = 30 masked, each 2 x 2 patches."""
  keys = jax.random.split(jax.random.key(0), 2000)
  masks = np.asarray(simmim.block_masks(keys, grid=14, scale=2, mask_ratio=0.6)).reshape(-1, 14, 14)
  official = _official_mask(np.random.default_rng(0), 224, 32, 16, 0.6)
  assert official.shape == masks.shape[1:]
  assert set(np.sum(masks, axis=(1, 2)) // 4) == {int(official.sum()) // 4} == {30}
  squares = masks.reshape(-1, 7, 2, 7, 2)
  assert np.all(squares == squares[:, :, :1, :, :1])                        # whole squares only
  frequency = squares[:, :, 0, :, 0].mean(axis=0)                            # each square's share of draws
  np.testing.assert_allclose(frequency, 30 / 49, atol=0.05)
  assert len({m.tobytes() for m in masks[:200]}) == 200                      # a draw per example


@pytest.mark.parametrize("channels", [1, 3])
def test_the_loss_is_the_officials_in_value_and_gradient_and_on_eight_devices(channels):
  rng = np.random.default_rng(1)
  patch, grid = 4, (4, 4)
  images = jnp.asarray(rng.normal(size=(8, 16, 16, channels)), jnp.float32)
  predictions = jnp.asarray(rng.normal(size=(8, 16, patch * patch * channels)), jnp.float32)
  mask_2d = np.stack([_official_mask(rng, 16, 8, 4, 0.6) for _ in range(8)])   # [8, 4, 4]
  mask = jnp.asarray(mask_2d.reshape(8, 16), jnp.float32)
  ours = lambda pred: losses.simmim_loss(pred, patchify(images, patch), mask, channels)
  nchw = lambda x: jnp.transpose(x, (0, 3, 1, 2))
  official = lambda pred: _official_loss(nchw(images), nchw(unpatchify(pred, patch, grid, channels)),
                                         jnp.asarray(mask_2d, jnp.float32), patch, channels)
  np.testing.assert_allclose(float(ours(predictions)), float(official(predictions)), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.grad(ours)(predictions)), np.asarray(jax.grad(official)(predictions)),
                             rtol=1e-5, atol=1e-9)
  sharded = on_devices(lambda p, x, m, axis: losses.simmim_loss(p, patchify(x, patch), m, channels, axis_name=axis),
                       predictions, images, mask)
  np.testing.assert_allclose(float(sharded), float(ours(predictions)), rtol=1e-6)


def test_the_methods_loss_on_its_network_and_the_mask_token_inside_the_encoder():
  config = tiny_config("simmim")
  trainer = train_step.build(config, total_steps=3, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  rng = np.random.default_rng(2)
  images = jnp.asarray(rng.normal(size=(8, 16, 16, 1)), jnp.float32)
  keys = jax.random.split(jax.random.key(1), 8)
  inputs = StepInputs([images], keys, jnp.zeros((8,), jnp.int32), jnp.asarray(0, jnp.int32), state.method_state,
                      None)
  out = trainer.method.loss(trainer.model, Variables(state.params, {}), None, inputs)
  masked = simmim.masks_for(config, keys)
  grid = config.augment.size // config.model.patch_size
  assert float(jnp.mean(masked)) == pytest.approx(math.ceil(0.6 * (grid // (config.method.mask_patch_size //
                                                                             config.model.patch_size)) ** 2)
                                                  / (grid // (config.method.mask_patch_size //
                                                              config.model.patch_size)) ** 2)
  predictions = trainer.model.apply({"params": state.params}, images, masked)
  p = config.model.patch_size
  expected = _official_loss(jnp.transpose(images, (0, 3, 1, 2)),
                            jnp.transpose(unpatchify(predictions, p, (grid, grid), 1), (0, 3, 1, 2)),
                            masked.reshape(8, grid, grid), p, 1)
  np.testing.assert_allclose(float(out.loss), float(expected), rtol=1e-6)
  # The mask token is the encoder's input at the masked patches: it gets a gradient, and changing a masked
  # patch's pixels changes no prediction, while changing a visible one does.
  grads = jax.jit(jax.grad(lambda params: trainer.method.loss(trainer.model, Variables(params, {}), None,
                                                             inputs).loss))(state.params)
  assert float(jnp.abs(grads["mask_token"]).sum()) > 0
  first_masked = int(np.argmax(np.asarray(masked[0])))
  first_visible = int(np.argmin(np.asarray(masked[0])))
  def poked(index):
    row, col = divmod(index, grid)
    return images.at[0, row * p:(row + 1) * p, col * p:(col + 1) * p].add(5.0)
  apply = lambda x: trainer.model.apply({"params": state.params}, x, masked)
  np.testing.assert_allclose(np.asarray(apply(poked(first_masked))[0, first_masked]),
                             np.asarray(predictions[0, first_masked]), rtol=1e-5, atol=1e-6)
  assert not np.allclose(np.asarray(apply(poked(first_visible))[0]), np.asarray(predictions[0]), atol=1e-4)


@pytest.mark.slow
def test_simmim_trains_the_same_on_eight_devices_as_on_one():
  config = tiny_config("simmim")
  batches = synthetic_batches(config, 2)
  runs = []
  for devices in (8, 1):
    steps = Steps(config, devices, total_steps=2)
    runs.append(([float(m["loss"]) for m in steps.run(batches)], jax.device_get(steps.state.params)))
  np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
  for a, b in zip(jax.tree.leaves(runs[0][1]), jax.tree.leaves(runs[1][1])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_config_checks():
  config = tiny_config("simmim")
  assert_refused(config, {"method.mask_patch_size": 6}, r"method.mask_patch_size=6: must be a multiple of "
                 r"model.patch_size \(4\) and divide augment.size \(16\)")
  assert_refused(config, {"method.mask_patch_size": 8, "method.mask_ratio": 0.0},
                 "method.mask_ratio=0.0: masks nothing")
  assert_refused(config, {"method.mask_ratio": 0.6, "model.encoder": "small_resnet"}, "use a ViT")
