"""DINOv2: the loss against a transcription of the official ``SSLMetaArch.forward_backward`` (values and
gradients, on the same network and masks), the official collate's masks, 8 devices = 1, the optimizer's DINOv2
pieces (sqrt lr scaling, per-module clipping, the last layer at lr 0 with its moments running, the learned
last-layer norms), the checks."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import assert_refused
from jaxssl.methods import dinov2
from jaxssl.methods.base import Variables
from jaxssl.models.vit import ViT
from jaxssl.ops import masking, optim
from jaxssl.schema import validate
from test_train import _assert_trees_close, _eight_devices_as_one
from tiny import loss_inputs, tiny_config


_loss_inputs = loss_inputs


# --- a transcription of the official code (dinov2/train/ssl_meta_arch.py, dinov2/loss/*.py), in jnp ----------

def _sinkhorn_knopp(teacher_output, teacher_temp, n_samples, n_iterations=3):
  """``DINOLoss.sinkhorn_knopp_teacher`` / ``iBOTPatchLoss.sinkhorn_knopp_teacher`` on one process."""
  q = jnp.exp(teacher_output / teacher_temp).T
  k = q.shape[0]
  q = q / jnp.sum(q)
  for _ in range(n_iterations):
    q = q / jnp.sum(q, axis=1, keepdims=True) / k
    q = q / jnp.sum(q, axis=0, keepdims=True) / n_samples
  return (q * n_samples).T


def _dino_loss(student_output_list, teacher_list, student_temp):
  """``DINOLoss.forward``."""
  total = 0.0
  for s in student_output_list:
    lsm = jax.nn.log_softmax(s / student_temp, axis=-1)
    for t in teacher_list:
      total -= jnp.mean(jnp.sum(t * lsm, axis=-1))
  return total


def _koleo(x, eps=1e-8):
  """``KoLeoLoss.forward``: F.normalize, the nearest other row by dot product, PairwiseDistance(2, eps)."""
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
  dots = x @ x.T
  dots = dots.at[jnp.arange(x.shape[0]), jnp.arange(x.shape[0])].set(-1.0)
  nearest = jnp.argmax(dots, axis=1)
  distances = jnp.linalg.norm(x - x[nearest] + eps, axis=-1)
  return -jnp.mean(jnp.log(distances + eps))


def _official_loss(params, ema_params, model, views, masks, m, teacher_temp):
  """``forward_backward``'s loss with ``centering: sinkhorn_knopp``, separate heads, one process. The backbone
  runs each crop through our ViT (the same weights); everything after it is the official code's."""
  n = views[0].shape[0]
  n_local = len(views) - 2
  global_crops = jnp.concatenate(views[:2])
  local_crops = jnp.concatenate(views[2:])
  masks = np.concatenate(masks) > 0                                   # collated_masks [2n, L]
  mask_indices_list = np.flatnonzero(masks.reshape(-1))
  n_masked_patches = len(mask_indices_list)
  masks_weight = np.broadcast_to((1 / np.maximum(masks.sum(-1), 1.0))[:, None], masks.shape)[masks]
  backbone = lambda p, x, masked=None, mask_token=None: model.encoder.apply(
      {"params": p["encoder"]}, x, masked=masked, mask_token=mask_token, method=ViT.tokens)
  head = lambda p, name, x: getattr(model, name).apply({"params": p[name]}, x, True)
  # get_teacher_output
  t = backbone(ema_params, global_crops)
  teacher_cls_tokens = jnp.concatenate([t.cls[n:], t.cls[:n]])       # chunked and cat'd in reverse
  teacher_cls_after_head = head(ema_params, "projector", teacher_cls_tokens)
  masked_teacher_patch_after_head = head(ema_params, "patch_projector",
                                         t.patches.reshape(2 * n * masks.shape[1], -1)[mask_indices_list])
  teacher_dino = _sinkhorn_knopp(teacher_cls_after_head, teacher_temp, 2 * n).reshape(2, n, -1)
  teacher_ibot = _sinkhorn_knopp(masked_teacher_patch_after_head, teacher_temp, n_masked_patches)
  teacher_dino, teacher_ibot = jax.lax.stop_gradient(teacher_dino), jax.lax.stop_gradient(teacher_ibot)
  # the student
  s_global = backbone(params, global_crops, jnp.asarray(masks, jnp.float32), params["mask_token"])
  s_local = backbone(params, local_crops)
  s_local_after = head(params, "projector", s_local.cls)
  s_global_after = head(params, "projector", s_global.cls)
  s_patch_after = head(params, "patch_projector",
                       s_global.patches.reshape(2 * n * masks.shape[1], -1)[mask_indices_list])
  n_local_terms, n_global_terms = max(n_local * 2, 1), 2
  dino_local = _dino_loss(jnp.split(s_local_after, n_local), list(teacher_dino), m.student_temperature) / (
      n_global_terms + n_local_terms)
  dino_global = _dino_loss([s_global_after], [teacher_dino.reshape(2 * n, -1)], m.student_temperature) * 2 / (
      n_global_terms + n_local_terms)
  koleo = m.koleo_weight * sum(_koleo(p) for p in jnp.split(s_global.cls, 2))
  ibot_per_token = jnp.sum(teacher_ibot * jax.nn.log_softmax(s_patch_after / m.student_temperature, -1), -1)
  ibot = -jnp.sum(ibot_per_token * masks_weight) / masks.shape[0] * 2 * (1.0 / 2)
  return dino_local + dino_global + koleo + ibot, (dino_local + dino_global, ibot)


# KoLeo's gradient goes as 1 / (distance to the nearest class token): at LayerScale's 1e-5 start the class tokens
# of different images are ~1e-5 apart and float32 rounding alone moves it by 1%, so KoLeo's case starts the
# blocks at LayerScale 1 (the loss values agree at 1e-5 either way).
@pytest.mark.parametrize("koleo_weight,layer_scale", [(0.0, 1e-5), (0.1, 1.0)])
def test_dinov2_loss_and_gradients_equal_the_official_forward_backward(koleo_weight, layer_scale):
  config = tiny_config("dinov2")
  config.method.group_size, config.method.koleo_weight = 0, koleo_weight
  config.model.layer_scale = layer_scale
  trainer, state, inputs = _loss_inputs(config)
  m = config.method
  masks = dinov2.masks(inputs.keys, m, (4, 4))
  assert 0 < float(jnp.mean(jnp.stack(masks))) < 0.5

  def ours(params):
    out = trainer.method.loss(trainer.model, Variables(params, {}), Variables(state.ema_params, {}), inputs)
    return out.loss, out.metrics

  def official(params):
    return _official_loss(params, state.ema_params, trainer.model, inputs.views, masks, m, m.teacher_temperature)

  (value, metrics), grads = jax.jit(jax.value_and_grad(ours, has_aux=True))(state.params)
  (expected, (dino_terms, ibot_term)), expected_grads = jax.jit(jax.value_and_grad(official, has_aux=True))(
      state.params)
  np.testing.assert_allclose(metrics["cls_loss"], dino_terms, rtol=2e-5)
  np.testing.assert_allclose(metrics["patch_loss"], ibot_term, rtol=2e-5)
  np.testing.assert_allclose(value, expected, rtol=2e-5)
  for path, (g, e) in zip(optim.param_paths(grads), zip(jax.tree.leaves(grads), jax.tree.leaves(expected_grads))):
    scale = float(jnp.abs(e).max())
    np.testing.assert_allclose(g, e, atol=2e-5 * max(scale, 1.0), rtol=2e-4, err_msg=path)
  assert float(jnp.abs(grads["mask_token"]).max()) > 0


def test_official_masks_half_the_crops_with_shares_spread_over_the_range():
  m = tiny_config("dinov2").method
  for group in (0, 4):
    m.group_size = group
    keys = jax.random.split(jax.random.key(3), 16)
    counts = np.asarray(dinov2.mask_counts(keys, m, 196))            # ViT-*/16 at 224 px: 14 x 14
    for start in range(0, 16, group or 16):                           # each group of 2 x g crops
      c = counts[:, start:start + (group or 16)].reshape(-1)
      total = c.size
      assert (c > 0).sum() == int(total * 0.5)                        # half masked (196 x 0.1 > 1)
      edges = np.linspace(0.1, 0.5, total // 2 + 1)
      np.testing.assert_array_less(np.floor(196 * edges[:-1]) - 1, np.sort(c[c > 0]))
      assert np.all(np.sort(c[c > 0]) <= np.floor(196 * edges[1:]))
  crop_masks = np.asarray(dinov2.masks(keys, m, (14, 14)))
  drawn = np.asarray(dinov2.mask_counts(keys, m, 196))
  assert np.all(crop_masks.sum(-1) <= drawn) and np.mean(crop_masks.sum(-1) == drawn) > 0.9


def _official_mask_generator(num_masking_patches, rng, height=14, width=14, min_num_patches=4, min_aspect=0.3):
  """``MaskingGenerator.__call__`` (dinov2/data/masking.py), max_num_patches 0.5 x 196 (never binding)."""
  import math
  mask = np.zeros((height, width), bool)
  count = 0
  log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
  while count < num_masking_patches:
    remaining = min(num_masking_patches - count, 98)
    delta = 0
    for _ in range(10):
      area = min_num_patches + (remaining - min_num_patches) * rng.random()     # random.uniform(a, b)
      aspect = math.exp(rng.uniform(*log_aspect))
      h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
      if w < width and h < height:
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        if 0 < h * w - mask[top:top + h, left:left + w].sum() <= remaining:
          delta += int((~mask[top:top + h, left:left + w]).sum())
          mask[top:top + h, left:left + w] = True
        if delta > 0:
          break
    if delta == 0:
      break
    count += delta
  return mask.sum()


def test_block_masks_reach_the_official_generators_counts():
  rng = np.random.default_rng(0)
  targets = np.arange(19, 98, 4)
  keys = jax.random.split(jax.random.key(0), len(targets) * 20)
  ours = jax.vmap(lambda k, t: masking.block_mask_of_count(k, (14, 14), t, 0.3, 4))(
      keys, jnp.repeat(jnp.asarray(targets, jnp.int32), 20)).sum(-1).reshape(len(targets), 20)
  official = np.array([[_official_mask_generator(int(t), rng) for _ in range(20)] for t in targets])
  np.testing.assert_allclose(np.asarray(ours).mean(1), official.mean(1), atol=1.5)
  assert np.all(np.asarray(ours) <= targets[:, None])


@pytest.mark.slow
@pytest.mark.parametrize("group_size,centering,gram", [(0, "sinkhorn", 0.0), (2, "center", 1.0)])
def test_dinov2_trains_the_same_on_eight_devices_as_on_one(group_size, centering, gram):
  config = tiny_config("dinov2")
  config.method.group_size, config.method.centering = group_size, centering
  config.method.gram_weight, config.method.gram_start, config.method.gram_update_every = gram, 1, 2
  config.model.layer_scale = 1.0      # KoLeo's float32 conditioning at LayerScale 1e-5: see the test above
  state8, state1 = _eight_devices_as_one(config)
  _assert_trees_close(state8.method_state, state1.method_state, 1e-4)
  assert ("gram_encoder" in state8.method_state) == (gram > 0)
  assert set(state8.params) == {"encoder", "mask_token", "projector", "patch_projector"}
  assert set(state8.ema_params) == {"encoder", "projector", "patch_projector"}


def test_center_mode_keeps_the_patch_centre_over_masked_tokens_only():
  config = tiny_config("dinov2")
  config.method.centering = "center"
  trainer, state, inputs = _loss_inputs(config)
  out = trainer.method.loss(trainer.model, Variables(state.params, {}), Variables(state.ema_params, {}), inputs)
  cls_logits, patch_logits, weights, _ = out.state_inputs
  new = trainer.method.update_state(state.method_state, out.state_inputs, inputs.step, None)
  flat, w = np.concatenate([np.asarray(p).reshape(-1, 32) for p in patch_logits]), np.concatenate(
      [np.asarray(x).reshape(-1) for x in weights]) > 0
  np.testing.assert_allclose(new["patch_center"], 0.1 * flat[w].mean(0), rtol=1e-5)


def test_learned_last_layer_norms_scale_the_cosines():
  config = tiny_config("dinov2")
  trainer, state, inputs = _loss_inputs(config)
  head = trainer.model.projector
  params = state.params["projector"]
  x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 64)), jnp.float32)
  base = head.apply({"params": params}, x)
  scaled = dict(params, last_layer_norm=params["last_layer_norm"] * 3.0)
  np.testing.assert_allclose(head.apply({"params": scaled}, x), 3.0 * base, rtol=1e-6)
  assert float(jnp.abs(base).max()) <= 1.0 + 1e-6


def test_optimizer_pieces_dinov2_needs():
  config = tiny_config("dinov2")
  config.train.batch_size = 256
  assert optim.peak_learning_rate(config) == pytest.approx(4e-3 * 0.5)            # sqrt(256 / 1024)
  # Per-group clipping: each group's global norm to at most 3, as torch's clip_grad_norm_ on each module.
  grads = {"encoder": {"a": jnp.full((4,), 3.0)}, "mask_token": jnp.full((2,), 4.0),
           "projector": {"b": jnp.full((1,), 1.0)}}
  clipped, _ = optim.clip_per_group(3.0, ("encoder/.*|mask_token", "projector/.*")).update(grads, None)
  norm = np.sqrt(4 * 9 + 2 * 16)
  np.testing.assert_allclose(clipped["encoder"]["a"], 3.0 * 3.0 / (norm + 1e-6), rtol=1e-6)
  np.testing.assert_allclose(clipped["mask_token"], 4.0 * 3.0 / (norm + 1e-6), rtol=1e-6)
  np.testing.assert_allclose(clipped["projector"]["b"], 1.0)
  # Frozen at lr 0 (DINOv2): the update is zero but Adam's moments run; "skip" (DINO) keeps them waiting.
  params = {"projector": {"last_layer": jnp.ones((2, 2))}, "encoder": {"w": jnp.ones((2, 2))}}
  g = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  for mode, moments_run in (("zero_lr", True), ("skip", False)):
    config.optim.freeze_mode, config.optim.rules = mode, (("projector/last_layer", 1.0, 1.0, 2),)
    config.optim.clip_grad_norm = 0.0
    tx = optim.make_optimizer(config, total_steps=10)
    opt_state = tx.init(params)
    updates, opt_state = tx.update(g, opt_state, params)
    assert float(jnp.abs(updates["projector"]["last_layer"]).max()) == 0.0
    assert float(jnp.abs(updates["encoder"]["w"]).max()) >= 0.0
    adam = [s for s in jax.tree_util.tree_leaves(opt_state, is_leaf=lambda s: isinstance(s, optax.ScaleByAdamState))
            if isinstance(s, optax.ScaleByAdamState)][0]
    assert (float(jnp.abs(adam.mu["projector"]["last_layer"]).max()) > 0) == moments_run
  # Layer-wise decay: registers and the mask token are embeddings (layer 0), as DINOv2's get_vit_lr_decay_rate.
  for path in ("encoder/reg_token", "mask_token", "encoder/patch_embed/kernel"):
    assert optim.layer_id(path, 4) == 0
  assert optim.layer_id("patch_projector/last_layer", 4) == 5


def test_uniform_drop_path_and_the_cls_mean_pool():
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 1)), jnp.float32)
  vit = ViT(patch_size=4, dim=16, depth=2, num_heads=2, base_grid=4, pool="cls_mean")
  params = vit.init(jax.random.key(0), x)
  tokens = vit.apply(params, x, method=ViT.tokens)
  np.testing.assert_allclose(vit.apply(params, x), np.concatenate([tokens.cls, tokens.patches.mean(1)], -1),
                             rtol=1e-6)
  keys = jax.random.split(jax.random.key(1), 2)
  linear = ViT(patch_size=4, dim=16, depth=2, num_heads=2, base_grid=4, drop_path_rate=0.5)
  uniform = ViT(patch_size=4, dim=16, depth=2, num_heads=2, base_grid=4, drop_path_rate=0.5,
                drop_path_uniform=True)
  p = linear.init(jax.random.key(0), x)
  # The first block drops nothing in timm's linear rule and half its branches with the uniform one.
  assert not np.allclose(linear.apply(p, x, train=True, drop_keys=keys), uniform.apply(p, x, train=True,
                                                                                        drop_keys=keys))


def test_dinov2_config_checks():
  validate.validate(tiny_config("dinov2"), num_devices=8)
  cases = [({"model.encoder": "small_resnet"}, "model.encoder", "DINOv2 masks patch tokens"),
           ({"method.separate_head": False, "method.patch_out_dim": 64}, "method.patch_out_dim",
            "must equal method.out_dim"),
           ({"method.centering": "batch"}, "method.centering", "must be one of"),
           ({"method.mask_ratio_range": (0.5, 0.1)}, "method.mask_ratio_range", re.escape("0 <= low <= high < 1")),
           ({"method.group_size": 3}, "method.group_size", "the groups .* must divide that"),
           ({"optim.lr_scaling": "sqrt"}, "optim.lr_scaling", "use one of"),
           ({"optim.freeze_mode": "never"}, "optim.freeze_mode", "use one of")]
  for changes, field, message in cases:
    assert_refused(tiny_config("dinov2"), changes, rf"^config\.{re.escape(field)}=.*{message}", 8)
  # A parameter in no clipping group is refused when the run starts, before anything is written (train.py).
  config = tiny_config("dinov2")
  trainer, state, _ = _loss_inputs(config)
  config.optim.clip_groups = ("encoder/.*",)
  with pytest.raises(validate.ConfigError, match=r"^config\.optim\.clip_groups=.*mask_token is in no group"):
    optim.check_against_params(config, state.params)


def test_the_pictures_draw_masks_for_fewer_images_than_a_group():
  config = tiny_config("dinov2")
  config.method.group_size = 32
  keys = jax.random.split(jax.random.key(0), 8)
  masks = dinov2.view_masks(config, keys)
  assert len(masks) == 2 + config.augment.num_local_crops and masks[2] is None
  assert int((np.asarray(masks[0]).sum(1) > 0).sum() + (np.asarray(masks[1]).sum(1) > 0).sum()) == 8


# --- DINOv3's Gram anchoring -----------------------------------------------------------------------------------

def _official_gram_loss(output_feats, target_feats, apply_norm=True, remove_neg=False, remove_only_teacher_neg=False):
  """``GramLoss.forward`` with ``img_level=True`` (dinov3/loss/gram_loss.py), in jnp."""
  normalize = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  if apply_norm:
    target_feats = normalize(target_feats)
  target_sim = target_feats @ jnp.swapaxes(target_feats, -1, -2)
  if apply_norm:
    output_feats = normalize(output_feats)
  student_sim = output_feats @ jnp.swapaxes(output_feats, -1, -2)
  if remove_neg:
    target_sim = jnp.where(target_sim < 0, 0.0, target_sim)
    student_sim = jnp.where(student_sim < 0, 0.0, student_sim)
  elif remove_only_teacher_neg:
    student_sim = jnp.where((student_sim < 0) & (target_sim < 0), 0.0, student_sim)
    target_sim = jnp.where(target_sim < 0, 0.0, target_sim)
  return jnp.mean((student_sim - target_sim) ** 2)


@pytest.mark.parametrize("mode,normalize", [("none", True), ("both", True), ("teacher", True), ("none", False)])
def test_gram_loss_equals_the_official_gram_loss(mode, normalize):
  from jaxssl.ops import losses
  rng = np.random.default_rng(0)
  student = jnp.asarray(rng.normal(size=(3, 10, 8)), jnp.float32)
  teacher = jnp.asarray(rng.normal(size=(3, 10, 8)), jnp.float32)
  ours = lambda s: losses.gram_loss(s, teacher, normalize, mode)
  official = lambda s: _official_gram_loss(s, teacher, normalize, mode == "both", mode == "teacher")
  np.testing.assert_allclose(ours(student), official(student), rtol=1e-5)
  np.testing.assert_allclose(jax.grad(ours)(student), jax.grad(official)(student), rtol=1e-4, atol=1e-7)
  assert float(losses.gram_loss(teacher, teacher, normalize, mode)) == pytest.approx(0.0, abs=1e-10)


def _official_gram_updates(total, it_load_ema_teacher, it_first_update, update_frequency, max_updates):
  """The steps whose Gram teacher is freshly the EMA teacher in dinov3/train/train.py's loop: loaded before
  iteration ``it_load_ema_teacher``, updated after iteration ``it`` (so in use from ``it + 1``)."""
  fresh, updates = set(), 0
  for it in range(total):
    if it == it_load_ema_teacher:
      fresh.add(it)
    if (it + 1) >= it_first_update and (it + 1) % update_frequency == 0 and (
        max_updates is None or updates < max_updates):
      fresh.add(it + 1)
      updates += 1
  return sorted(s for s in fresh if s < total)


@pytest.mark.parametrize("start,first,every,most", [(0, 0, 5, 3), (7, 10, 4, 0), (3, 3, 3, 2)])
def test_the_gram_teacher_is_refreshed_as_the_official_loop_refreshes_it(start, first, every, most):
  m = tiny_config("dinov2").method
  m.gram_start, m.gram_update_start, m.gram_update_every, m.gram_max_updates = start, first, every, most
  ours = [s for s in range(40) if bool(dinov2.gram_refresh(jnp.asarray(s), m))]
  assert ours == _official_gram_updates(40, start, first, every, most or None)


def test_gram_anchoring_adds_its_loss_and_keeps_the_teacher_copy():
  config = tiny_config("dinov2")
  m = config.method
  m.gram_weight, m.gram_start, m.gram_update_every = 2.0, 5, 100       # the copy is taken at step 5
  trainer, state, inputs = _loss_inputs(config)                         # step 5
  assert set(state.method_state) == {"center", "patch_center", "gram_encoder"}
  ema = jax.tree.map(lambda x: x + 0.01, state.ema_params)              # a teacher that differs from the student
  out = trainer.method.loss(trainer.model, Variables(state.params, {}), Variables(ema, {}), inputs)
  copied = out.state_inputs[3]
  _assert_trees_close(copied, ema["encoder"], 0.0)
  plain = out.metrics["cls_loss"] + out.metrics["patch_loss"] + m.koleo_weight * out.metrics["koleo"]
  np.testing.assert_allclose(out.loss, plain + 2.0 * out.metrics["gram_loss"], rtol=1e-6)
  assert float(out.metrics["gram_loss"]) > 0
  new = trainer.method.update_state(state.method_state, out.state_inputs, inputs.step, None)
  _assert_trees_close(new["gram_encoder"], ema["encoder"], 0.0)
  # At a step that is no refresh, the saved copy is the teacher (the EMA's own moves do not reach it).
  later = inputs._replace(step=jnp.asarray(6, jnp.int32), method_state=new)
  out = trainer.method.loss(trainer.model, Variables(state.params, {}), Variables(state.ema_params, {}), later)
  _assert_trees_close(out.state_inputs[3], ema["encoder"], 0.0)


# --- DINOv3's rotary position embedding --------------------------------------------------------------------------

def _official_rope(H, W, embed_dim, num_heads, base=100.0):
  """``RopePositionEmbedding.forward`` (dinov3/layers/rope_position_encoding.py), normalize_coords="separate",
  no shift, jitter or rescale, in float64 numpy."""
  d_head = embed_dim // num_heads
  periods = base ** (2 * np.arange(d_head // 4) / (d_head // 2))
  coords_h = np.arange(0.5, H) / H
  coords_w = np.arange(0.5, W) / W
  coords = np.stack(np.meshgrid(coords_h, coords_w, indexing="ij"), axis=-1).reshape(-1, 2)
  coords = 2.0 * coords - 1.0
  angles = 2 * np.pi * coords[:, :, None] / periods[None, None, :]
  angles = np.tile(angles.reshape(H * W, -1), 2)
  return np.sin(angles), np.cos(angles)


def _official_apply_rope(q, sin, cos):
  """``SelfAttention.apply_rope`` on [B, heads, N, Dh] (prefix tokens left as they are), ``rope_apply``."""
  prefix = q.shape[2] - sin.shape[-2]
  x = q[:, :, prefix:]
  x1, x2 = np.split(x, 2, axis=-1)
  rotated = x * cos + np.concatenate([-x2, x1], axis=-1) * sin
  return np.concatenate([q[:, :, :prefix], rotated], axis=2)


def test_rope_equals_dinov3s_on_random_queries():
  from jaxssl.models import vit
  sin, cos = vit.rope_sin_cos((3, 5), 16)
  ref_sin, ref_cos = _official_rope(3, 5, 64, 4)
  np.testing.assert_allclose(sin, ref_sin, atol=1e-6)
  np.testing.assert_allclose(cos, ref_cos, atol=1e-6)
  q = np.random.default_rng(0).normal(size=(2, 4, 2 + 15, 16)).astype(np.float32)   # class token + 1 register
  ours = vit.apply_rope(jnp.asarray(q.transpose(0, 2, 1, 3)), jnp.asarray(sin), jnp.asarray(cos))
  np.testing.assert_allclose(np.asarray(ours).transpose(0, 2, 1, 3), _official_apply_rope(q, ref_sin, ref_cos),
                             atol=1e-5)


@pytest.mark.parametrize("scan", [False, True])
def test_a_rope_vit_has_no_position_table_and_its_patches_know_where_they_are(scan, monkeypatch):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 16, 16, 1)), jnp.float32)
  vit = ViT(patch_size=4, dim=32, depth=2, num_heads=2, base_grid=4, pos_embed="rope", scan_layers=scan,
            num_registers=1)
  params = vit.init(jax.random.key(0), x)
  assert "pos_embed" not in params["params"]
  tokens = vit.apply(params, x, method=ViT.tokens)
  # The same patch content at two places gives two different tokens; without positions they would be equal to
  # float32 rounding (attention is equivariant to permutations of its tokens).
  same = jnp.tile(x[:, :4, :4], (1, 4, 4, 1))
  out = vit.apply(params, same, method=ViT.tokens).patches
  assert float(jnp.abs(out[:, 0] - out[:, 5]).max()) > 1e-4 and tokens.patches.shape == (2, 16, 32)
  from jaxssl.models import vit as vit_module
  identity = lambda grid, head_dim: (np.zeros((grid[0] * grid[1], head_dim), np.float32),
                                     np.ones((grid[0] * grid[1], head_dim), np.float32))
  monkeypatch.setattr(vit_module, "rope_sin_cos", identity)       # no rotation: no positions at all
  unrotated = vit.apply(params, same, method=ViT.tokens).patches
  assert float(jnp.abs(unrotated[:, 0] - unrotated[:, 5]).max()) < 1e-5
  with pytest.raises(ValueError, match="pos_embed='rope' rotates every patch"):
    vit.apply(params, x, keep_ids=jnp.zeros((2, 3), jnp.int32), method=ViT.tokens)


def test_dinov2_with_rope_and_mae_refuses_it():
  config = tiny_config("dinov2")
  config.model.pos_embed = "rope"
  validate.validate(config, num_devices=8)
  trainer, state, inputs = _loss_inputs(config)
  assert "pos_embed" not in state.params["encoder"]
  out = trainer.method.loss(trainer.model, Variables(state.params, {}), Variables(state.ema_params, {}), inputs)
  assert np.isfinite(float(out.loss))
  assert_refused(tiny_config("mae"), {"model.pos_embed": "rope"}, r"^config\.model\.pos_embed='rope': MAE's encoder")
