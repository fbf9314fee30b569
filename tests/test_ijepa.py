"""I-JEPA through the trainer: 8 devices = 1, the context encoder sees only the context, the targets come from
the EMA encoder on the full image, the whole loop."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl import methods, train
from jaxssl.engine import train_step
from jaxssl.methods import ijepa
from jaxssl.methods.base import StepInputs, Variables
from jaxssl.models.ijepa import target_tokens
from jaxssl.ops import losses, optim
from jaxssl.schema import validate
from test_train import _assert_trees_close, _batches, _run_shard_map
from tiny import tiny_config


@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
def test_ijepa_trains_the_same_on_eight_devices_as_on_one():
  config = tiny_config("ijepa")
  batches = _batches(config, 3)
  state8, losses8, _ = _run_shard_map(config, batches, 8)
  state1, losses1, _ = _run_shard_map(config, batches, 1)
  assert all(np.isfinite(losses8))
  np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
  _assert_trees_close(state8.params, state1.params, 1e-5)
  assert set(state8.params) == {"encoder", "predictor"} and set(state8.ema_params) == {"encoder"}
  # The target encoder follows the online one by EMA (it moved, and is not the online encoder).
  init = train_step.init_state(train_step.build(config, 3), jax.random.key(0), 1)
  leaf = lambda tree: np.asarray(tree["encoder"]["block_0"]["attn"]["qkv"]["kernel"])
  assert not np.array_equal(leaf(state8.ema_params), leaf(init.ema_params))
  assert not np.array_equal(leaf(state8.ema_params), leaf(state8.params))


def _inputs(config, images, step=0):
  keys = jax.random.split(jax.random.key(1), images.shape[0])
  return StepInputs([images], keys, jnp.zeros((images.shape[0],), jnp.int32), jnp.asarray(step, jnp.int32), (), None)


def _official_smooth_l1(z, h):
  """``F.smooth_l1_loss(z, h)`` (beta 1, mean over every element), in float64."""
  d = np.abs(np.asarray(z, np.float64) - np.asarray(h, np.float64))
  return np.where(d < 1.0, 0.5 * d ** 2, d - 0.5).mean()


def test_ijepa_loss_reads_the_context_for_the_predictor_and_the_full_image_for_the_targets():
  config = tiny_config("ijepa")                       # 16 px, patch 4: a 4 x 4 grid
  trainer = train_step.build(config, total_steps=3, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  images = jnp.asarray(np.random.default_rng(0).normal(size=(4, 16, 16, 1)), jnp.float32)
  inputs = _inputs(config, images)
  online, target = Variables(state.params, {}), Variables(state.ema_params, {})
  out = trainer.method.loss(trainer.model, online, target, inputs)
  masks = ijepa.masks_for(ijepa.sizes_key(config.seed, 0), inputs.keys, (4, 4), config.method)
  predictions = trainer.model.apply({"params": state.params}, images, masks)
  targets = target_tokens(trainer.model.encoder, state.ema_params["encoder"], images, masks.targets)
  np.testing.assert_allclose(out.loss, losses.ijepa_loss(predictions, targets, valid=masks.target_valid()), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(targets).mean(-1), 0.0, atol=1e-5)          # layer-normalised
  # A patch outside image 0's context: changing it leaves the predictions alone but moves the targets (the
  # target encoder sees every patch).
  context0 = set(np.asarray(masks.context[0])[:int(masks.context_count[0])])
  outside = sorted(set(range(16)) - context0)[0]
  row, col = divmod(outside, 4)
  changed = images.at[0, 4 * row:4 * row + 4, 4 * col:4 * col + 4].add(2.0)
  np.testing.assert_allclose(trainer.model.apply({"params": state.params}, changed, masks)[0], predictions[0],
                             atol=1e-6)
  moved = target_tokens(trainer.model.encoder, state.ema_params["encoder"], changed, masks.targets)
  assert not np.allclose(moved[0], targets[0], atol=1e-4)
  # The loss's gradient reaches the context encoder and the predictor, and not the target.
  grads = jax.grad(lambda p: trainer.method.loss(trainer.model, Variables(p, {}), target, inputs).loss)(state.params)
  assert all(float(jnp.abs(g).sum()) > 0 for g in jax.tree.leaves(grads["predictor"]))
  assert float(jnp.abs(grads["encoder"]["block_0"]["attn"]["qkv"]["kernel"]).sum()) > 0


@pytest.mark.slow                 # six compilations, one per context size (over 20 s on 2 cores)
def test_ijepa_padding_changes_nothing_the_official_forward_pass_computes():
  # A 7 x 7 grid (28 px, patch 4): contexts of different sizes, targets padded to the largest block.
  config = tiny_config("ijepa")
  config.data.synthetic_size = config.augment.size = 28
  config.method.min_keep, config.method.context_keep = 4, 20
  validate.validate(config, num_devices=8)
  trainer = train_step.build(config, total_steps=3, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  images = jnp.asarray(np.random.default_rng(1).normal(size=(6, 28, 28, 1)), jnp.float32)
  m, grid = config.method, (7, 7)
  step = next(s for s in range(50) if int(ijepa.masks_for(ijepa.sizes_key(config.seed, s), _inputs(config, images).keys,
                                                          grid, m).target_count) < 12)      # padded targets
  inputs = _inputs(config, images, step)
  out = trainer.method.loss(trainer.model, Variables(state.params, {}), Variables(state.ema_params, {}), inputs)
  masks = ijepa.masks_for(ijepa.sizes_key(config.seed, step), inputs.keys, grid, m)
  counts, k = np.asarray(masks.context_count), int(masks.target_count)
  assert masks.targets.shape[2] > k and len(set(counts)) > 1 and counts.max() <= 20
  # The official pass, one image at a time with nothing padded (the official batch holds contexts of one size,
  # so an image on its own is what it computes): the context encoder on its context, the predictor on it and
  # each target's mask tokens, the loss against the target encoder's normalised tokens there.
  padded = trainer.model.apply({"params": state.params}, images, masks)
  z, h = [], []
  for i in range(6):
    context = masks.context[i:i + 1, :counts[i]]
    targets = masks.targets[i:i + 1, :, :k]
    tokens = trainer.model.encoder.apply({"params": state.params["encoder"]}, images[i:i + 1], keep_ids=context,
                                         method=trainer.model.encoder.tokens)
    z.append(trainer.model.predictor.apply({"params": state.params["predictor"]}, tokens.patches, context, targets,
                                           grid))
    h.append(target_tokens(trainer.model.encoder, state.ema_params["encoder"], images[i:i + 1], targets))
    # The padded batch's predictions at the real entries are the unpadded ones (letting the padding be attended
    # to moves them by ~4e-4 here).
    np.testing.assert_allclose(padded[i, :, :k], z[-1][0], atol=2e-6)
  np.testing.assert_allclose(out.loss, _official_smooth_l1(np.concatenate(z), np.concatenate(h)), rtol=2e-5)


def test_ijepa_ema_rises_linearly_to_one():
  np.testing.assert_allclose([optim.ema_momentum(s, 100, 0.996, "linear") for s in (0, 50, 100, 150)],
                             [0.996, 0.998, 1.0, 1.0], atol=1e-7)


def test_ijepa_config_checks():
  validate.validate(tiny_config("ijepa"), num_devices=8)
  bad = [("model.encoder", "small_resnet", "I-JEPA predicts patch tokens: use a ViT"),
         ("method.target_scale", (0.3, 0.2), "need (low, high) with 0.0 <= low <= high <= 1.0"),
         ("method.context_scale", [0.9, "1"], "need (low, high) with 0.0 <= low <= high <= 1.0"),
         ("method.context_keep", 40, "more than the largest context block of the (4, 4) patch grid (9 patches)"),
         ("method.context_scale", (0.0, 0.05), "the smallest context block of the (4, 4) patch grid (augment.size "
          "/ model.patch_size) has no patch"),
         ("method.min_keep", 2, "the smallest target block of the (4, 4) patch grid (augment.size / model.patch_size) "
          "has 1 patches (method.target_scale (0.15, 0.2)): every block needs more than min_keep"),
         ("method.predictor_dim", 30, "must be divisible by method.predictor_heads and by 4")]
  for field, value, message in bad:
    config = tiny_config("ijepa")
    section, name = field.split(".")
    config[section][name] = value
    if field == "model.encoder":
      config.model.pos_embed = "learned"
    with pytest.raises(validate.ConfigError, match=rf"^config.{field}=.*{re.escape(message)}"):
      validate.validate(config, num_devices=8)


@pytest.mark.slow
def test_ijepa_runs_the_whole_loop_with_knn_on_mean_patch_tokens(tmp_path, capsys):
  config = tiny_config("ijepa")
  config.eval.online_probe = True
  results = train.run(config, str(tmp_path / "run"))
  assert "online probe: off for method 'ijepa'" in capsys.readouterr().out
  assert results["steps"] == 3 and np.isfinite(results["final_loss"])
  assert 0.0 <= results["knn_accuracy"] <= 1.0
  assert "ijepa" in methods.names()
  import jaxssl
  module, variables = jaxssl.load_encoder(str(tmp_path / "run"))
  assert module.pool == "mean" and module.apply(variables, jnp.zeros((3, 16, 16, 1)), train=False).shape == (3, 64)
