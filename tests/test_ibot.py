"""iBOT through the trainer: 8 devices = 1, the masked student and the unmasked teacher, DINOv2's options, the
whole loop."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl import methods, train
from jaxssl.engine import train_step
from jaxssl.methods import dino, ibot
from jaxssl.methods.base import StepInputs, Variables
from jaxssl.models.ibot import teacher_outputs
from jaxssl.ops import losses
from jaxssl.schema import validate
from test_train import _assert_trees_close, _eight_devices_as_one
from tiny import tiny_config


# The dinov2 variant only: its Sinkhorn-Knopp targets and KoLeo are the cross-device terms the official one
# lacks, and the centre both share is DINO's (tests/test_train.py's 8-vs-1 of dino).
@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
@pytest.mark.parametrize("variant", ["dinov2"])
def test_ibot_trains_the_same_on_eight_devices_as_on_one(variant):
  config = tiny_config("ibot")
  if variant == "dinov2":                      # separate patch head, Sinkhorn-Knopp targets, KoLeo
    config.method.shared_head, config.method.centering, config.method.koleo_weight = False, "sinkhorn", 0.1
  state8, state1 = _eight_devices_as_one(config)
  _assert_trees_close(state8.method_state, state1.method_state, 1e-4)
  heads = {"projector"} if variant == "official" else {"projector", "patch_projector"}
  assert set(state8.params) == {"encoder", "mask_token"} | heads
  assert set(state8.ema_params) == {"encoder"} | heads                 # the teacher has no mask token
  assert np.any(np.asarray(state8.method_state["patch_center"]) != 0)
  # The mask token trains (it is the student's input at the masked patches).
  assert np.any(np.asarray(state8.params["mask_token"]) != 0)


def _loss_inputs(config, seed=0):
  trainer = train_step.build(config, total_steps=3, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  rng = np.random.default_rng(seed)
  views = [jnp.asarray(rng.normal(size=(8, 16, 16, 1)), jnp.float32) for _ in range(2)] + \
          [jnp.asarray(rng.normal(size=(8, 8, 8, 1)), jnp.float32) for _ in range(2)]
  keys = jax.random.split(jax.random.key(1), 8)
  inputs = StepInputs(views, keys, jnp.zeros((8,), jnp.int32), jnp.asarray(5, jnp.int32), state.method_state, None)
  return trainer, state, inputs


def test_ibot_loss_is_the_official_sum_of_its_two_terms():
  config = tiny_config("ibot")
  config.method.pred_ratios, config.method.pred_ratio_vars = (0.3,), (0.2,)     # every image masked
  trainer, state, inputs = _loss_inputs(config)
  online, target = Variables(state.params, {}), Variables(state.ema_params, {})
  out = trainer.method.loss(trainer.model, online, target, inputs)
  m = config.method
  # Recompute from the network's pieces: the teacher on unmasked global views, the student on masked ones.
  masks = [ibot.masks_for(inputs.keys, v, (4, 4), m) for v in range(2)]
  assert 0 < float(jnp.mean(jnp.stack(masks))) < 0.6
  student = [trainer.model.apply({"params": state.params}, x, masked=masks[v] if v < 2 else None,
                                 with_patches=v < 2) for v, x in enumerate(inputs.views)]
  teacher = [teacher_outputs(trainer.model, state.ema_params, inputs.views[v]) for v in range(2)]
  temperature = m.teacher_temperature                    # past the 2 warm-up steps of the small config
  cls = losses.dino_loss([s.cls_logits for s in student], [t.cls_logits for t in teacher],
                         inputs.method_state["center"], m.student_temperature, temperature)
  patch = sum(losses.ibot_patch_loss(student[v].patch_logits,
                                     losses.centred_softmax(teacher[v].patch_logits, 0.0, temperature), masks[v],
                                     m.student_temperature) for v in range(2)) / 2
  np.testing.assert_allclose(out.metrics["cls_loss"], cls, rtol=1e-5)
  np.testing.assert_allclose(out.metrics["patch_loss"], patch, rtol=1e-5)
  np.testing.assert_allclose(out.loss, cls + patch, rtol=1e-5)
  # Masking matters: with no masked patch the student's tokens are the teacher's (same weights at step 0), so
  # the patch loss is the teacher's own entropy; with masks it is larger.
  assert float(out.metrics["patch_loss"]) > 0


def test_masked_patches_reach_the_student_as_the_mask_token():
  config = tiny_config("ibot")
  trainer, state, inputs = _loss_inputs(config)
  x = inputs.views[0]
  mask = jnp.zeros((8, 16)).at[:, 5].set(1.0)
  changed = x.at[:, 4:8, 4:8].add(3.0)                  # patch 5 of the 4 x 4 grid
  apply = lambda images: trainer.model.apply({"params": state.params}, images, masked=mask)
  np.testing.assert_allclose(apply(changed).patch_logits, apply(x).patch_logits, atol=1e-6)
  unmasked = lambda images: trainer.model.apply({"params": state.params}, images)
  assert not np.allclose(unmasked(changed).patch_logits, unmasked(x).patch_logits, atol=1e-4)


def test_ibot_config_checks():
  config = tiny_config("ibot")
  validate.validate(config, num_devices=8)
  bad = [("model.encoder", "small_resnet", "iBOT masks patch tokens"),
         ("method.patch_out_dim", 64, "a shared head scores both token kinds: must equal method.out_dim (32)"),
         ("method.centering", "batch", "must be one of"),
         ("method.pred_ratios", (0.3, 0.9), "r + v < 1"),
         ("method.pred_ratio_vars", (0.1,), "needs one spread per method.pred_ratios")]
  for field, value, message in bad:
    config = tiny_config("ibot")
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(validate.ConfigError, match=rf"^config.{field}=.*{re.escape(message)}"):
      validate.validate(config, num_devices=8)


@pytest.mark.slow
def test_ibot_runs_the_whole_loop_with_knn_and_the_last_layers_frozen(tmp_path):
  config = tiny_config("ibot")
  config.method.shared_head = False
  results = train.run(config, str(tmp_path / "run"))
  assert results["steps"] == 3 and np.isfinite(results["final_loss"])
  assert 0.0 <= results["knn_accuracy"] <= 1.0
  assert "ibot" in methods.names()
  from jaxssl.runs.restore import load_run
  run = load_run(str(tmp_path / "run"))
  fresh = train_step.init_state(run.trainer, jax.random.key(config.seed), 1)
  for head in ("projector", "patch_projector"):           # frozen for 2 of 3 steps: moved once
    assert not np.array_equal(run.state.params[head]["last_layer"], fresh.params[head]["last_layer"])


# ----------------------------------------------------------------------------------------------------------------
# DINOv2's Sinkhorn-Knopp centring, transcribed in float64 from the official code (dinov2/loss/dino_clstoken_loss.py
# and ibot_patch_loss.py, ``sinkhorn_knopp_teacher``; one process, so the all-reduces are the identities) and
# applied as ``ssl_meta_arch.get_teacher_output`` applies it: once over the class tokens of both global crops, once
# over the masked patch tokens of every image (B = n_masked_patches).


def _official_sinkhorn_knopp(teacher_output, teacher_temp, n_samples=None, n_iterations=3):
  q = np.exp(np.asarray(teacher_output, np.float64) / teacher_temp).T          # K x B
  b = q.shape[1] if n_samples is None else n_samples
  k = q.shape[0]
  q /= q.sum()
  for _ in range(n_iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  q *= b
  return q.T


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_ibot_sinkhorn_targets_are_dinov2s_over_both_crops_and_all_masked_patches():
  config = tiny_config("ibot")
  config.method.centering, config.method.shared_head = "sinkhorn", False
  config.method.pred_ratios, config.method.pred_ratio_vars = (0.3,), (0.2,)     # every image masked
  trainer, state, inputs = _loss_inputs(config)
  m = config.method
  out = trainer.method.loss(trainer.model, Variables(state.params, {}), Variables(state.ema_params, {}), inputs)
  masks = [np.asarray(ibot.masks_for(inputs.keys, v, (4, 4), m)) for v in range(2)]
  student = [trainer.model.apply({"params": state.params}, x, masked=jnp.asarray(masks[v]) if v < 2 else None,
                                 with_patches=v < 2) for v, x in enumerate(inputs.views)]
  teacher = [teacher_outputs(trainer.model, state.ema_params, inputs.views[v]) for v in range(2)]
  temperature, n = m.teacher_temperature, 8                  # past the 2 warm-up steps of the small config
  # Class tokens: one Sinkhorn-Knopp over the 2n tokens of both crops, then iBOT's cross-crop loss.
  cls_q = _official_sinkhorn_knopp(np.concatenate([t.cls_logits for t in teacher]), temperature)
  cls_targets = [cls_q[:n], cls_q[n:]]
  terms = [-(cls_targets[a] * _log_softmax(np.asarray(s.cls_logits) / m.student_temperature)).sum(-1).mean()
           for a in range(2) for v, s in enumerate(student) if v != a]
  np.testing.assert_allclose(out.metrics["cls_loss"], np.mean(terms), rtol=2e-5)
  # Patch tokens: one Sinkhorn-Knopp over the masked tokens of all 2n images (B: how many), then each image's mean
  # over its masked tokens, summed over the 2n images and divided by 2n (``forward_masked``).
  flat_masks = np.concatenate([mk.reshape(-1) for mk in masks]) > 0
  patch_logits = np.concatenate([np.asarray(t.patch_logits).reshape(-1, m.patch_out_dim) for t in teacher])
  patch_q = np.zeros_like(patch_logits, np.float64)
  patch_q[flat_masks] = _official_sinkhorn_knopp(patch_logits[flat_masks], m.teacher_patch_temperature,
                                                 n_samples=int(flat_masks.sum()))
  patch_q = patch_q.reshape(2, n, 16, -1)
  total = 0.0
  for v in range(2):
    ce = -(patch_q[v] * _log_softmax(np.asarray(student[v].patch_logits) / m.student_temperature)).sum(-1)
    total += ((ce * masks[v]).sum(1) / np.maximum(masks[v].sum(1), 1.0)).sum()
  np.testing.assert_allclose(out.metrics["patch_loss"], total / (2 * n), rtol=2e-5)
  # What the per-crop Sinkhorn-Knopp gave instead: targets of their own, which the comparison above tells apart.
  per_crop = _official_sinkhorn_knopp(np.asarray(teacher[0].cls_logits), temperature)
  assert np.abs(per_crop - cls_targets[0]).max() > 1e-3


def _official_teacher_temp_schedule(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, nepochs):
  """DINO's and iBOT's ``DINOLoss.teacher_temp_schedule`` (main_dino.py, main_ibot.py), indexed by epoch."""
  return np.concatenate((np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
                         np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp))


@pytest.mark.parametrize("method", ["dino", "ibot"])
def test_teacher_temperatures_follow_the_official_per_epoch_schedule(method):
  config = tiny_config(method)
  m = config.method
  steps_per_epoch, warmup_epochs, epochs = 7, 5, 9
  m.teacher_temperature_warmup_steps = warmup_epochs * steps_per_epoch
  m.teacher_temperature_hold_steps = steps_per_epoch
  validate.validate(config, num_devices=8)
  expected = _official_teacher_temp_schedule(0.04, 0.07, warmup_epochs, epochs)
  steps = np.arange(epochs * steps_per_epoch)
  got = [float(dino.teacher_temperature(s, m)) for s in steps]
  np.testing.assert_allclose(got, expected[steps // steps_per_epoch], rtol=1e-6)
  assert got[(warmup_epochs - 1) * steps_per_epoch] == pytest.approx(0.07)      # the final value at epoch W-1
  if method == "ibot":
    np.testing.assert_allclose([float(ibot.patch_temperature(s, m)) for s in steps],
                               expected[steps // steps_per_epoch], rtol=1e-6)
  # One value per step (DINOv2's CosineScheduler warm-up: linspace over the warm-up iterations), and none.
  m.teacher_temperature_hold_steps = 1
  np.testing.assert_allclose([float(dino.teacher_temperature(s, m)) for s in range(40)],
                             np.concatenate([np.linspace(0.04, 0.07, 35), np.full(5, 0.07)]), rtol=1e-6)
  m.teacher_temperature_warmup_steps = 0
  assert float(dino.teacher_temperature(0, m)) == pytest.approx(0.07)
  m.teacher_temperature_warmup_steps, m.teacher_temperature_hold_steps = 35, 6
  with pytest.raises(validate.ConfigError, match=r"^config.method.teacher_temperature_hold_steps=6: must divide"):
    validate.validate(config, num_devices=8)
