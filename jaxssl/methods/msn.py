"""MSN (Assran et al. 2022, "Masked Siamese Networks for Label-Efficient Learning", arXiv:2204.07141; official
``src/msn_train.py``, ``src/losses.py``, ``src/deit.py``, ``configs/pretrain/msn_vits16.yaml``), with PMSN's
power-law prior as an option (Assran et al. 2022, arXiv:2210.07277; lightly's ``PMSNLoss``).

Views: a target view and an anchor view of the same recipe (``rand`` views), then ``augment.num_local_crops``
focal views. The EMA target encoder (and its head) embeds the target view; the online encoder embeds the anchor
view with a random share ``patch_drop`` of its patches dropped (one draw per group of ``group_size`` images, as
the official ``torch.randperm`` is one per GPU batch) and the focal views whole. Each anchor's assignment to
learned prototypes is pulled towards its image's sharpened, Sinkhorn-balanced target assignment, and the
batch's mean assignment towards uniform (``losses.msn_loss``). The head's BatchNorm sees the anchor view as one
batch and the focal views together as another, as the official per-crop-size forward does.

Not reproduced: the sharpening temperature's schedule (the official recipe holds it at 0.25), the prototype
gradients' all-reduce sum (AdamW does not see a constant factor, up to its epsilon).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxssl.common import config_checks
from jaxssl.methods import base
from jaxssl.methods.base import check_momentum
from jaxssl.models.heads import MLP
from jaxssl.models.msn import MSNNetwork
from jaxssl.models.vit import ViT
from jaxssl.ops import augment, losses

_DROP_STREAM, _PATH_STREAM = 10, 30


def recipes(config):
  """Two ``rand`` views (SimCLR's colour distortion at ``augment.jitter_strength``, blur ``augment.blur_prob``),
  then the focal views with the same settings at ``augment.local_size`` and ``local_crop_scale``."""
  a = config.augment
  return augment.multicrop_recipes(base.simclr_pair(config), a.local_size, a.num_local_crops,
                                   tuple(a.local_crop_scale))


def group_keys(keys: jax.Array, group_size: int, axis_name=None) -> jax.Array:
  """[n] keys -> [n]: each example's key replaced by that of the first example of its group of ``group_size``
  consecutive examples, or with ``group_size`` 0 (or a share it does not divide: a picture's few images) by
  that of the global batch's first example, so that any number of devices draws the same."""
  n = keys.shape[0]
  if group_size and n % group_size == 0:
    return keys[(jnp.arange(n) // group_size) * group_size]
  if axis_name is None:
    return keys[jnp.zeros((n,), jnp.int32)]
  first = jax.lax.all_gather(jax.random.key_data(keys[:1]), axis_name)[0]
  return jax.random.wrap_key_data(first, impl=jax.random.key_impl(keys))[jnp.zeros((n,), jnp.int32)]


def kept_patches(keys: jax.Array, num_patches: int, patch_drop: float, group_size: int, axis_name=None):
  """int32 [n, K]: the patches each anchor keeps, ``K = floor(L * (1 - patch_drop))`` of a random permutation
  drawn once per group (``deit.py``'s ``forward_features``)."""
  kept = int(num_patches * (1.0 - patch_drop))
  shared = group_keys(base.stream(keys, _DROP_STREAM), group_size, axis_name)
  return jax.vmap(lambda k: jax.random.permutation(k, num_patches)[:kept])(shared).astype(jnp.int32)


def ema_schedule(base_momentum: float, stretch: float):
  """The official momentum: linear from ``base_momentum`` to 1 over ``stretch`` x the run (1.25)."""
  return lambda step, total: jnp.minimum(base_momentum + (1.0 - base_momentum) * step / (stretch * max(total, 1)),
                                         1.0)


def teacher_embeddings(model: MSNNetwork, target: base.Variables, images: jax.Array) -> jax.Array:
  """The EMA target (encoder and head; it has no prototypes) on the unmasked target view, its head's BatchNorm
  on the batch as the official target encoder in training mode (its running averages are not kept)."""
  cls = model.encoder.apply({"params": target.params["encoder"]}, images, method=ViT.tokens).cls
  out, _ = model.projector.apply({"params": target.params["projector"],
                                  "batch_stats": target.batch_stats["projector"]}, cls, True,
                                 mutable=["batch_stats"])
  return out


def make(config) -> base.Method:
  m = config.method
  grid = (config.augment.size // config.model.patch_size,) * 2

  def make_model(config, encoder, axis_name, dtype):
    projector = MLP(tuple(m.proj_hidden_dims), m.proj_dim, axis_name=axis_name, use_bn=True, activation="gelu",
                    dtype=dtype)
    return MSNNetwork(encoder, projector, m.num_prototypes)

  def student(module, anchor, focal, keep_ids, drop_keys):
    tokens = module.encoder.tokens(anchor, keep_ids=keep_ids, drop_keys=drop_keys[0])
    embeddings = [module.project(tokens.cls)]
    if focal:
      embeddings.append(module.project(jnp.concatenate(
          [module.class_tokens(x, drop_keys[i + 1], train=True) for i, x in enumerate(focal)])))
    return jnp.concatenate(embeddings), module.get_prototypes(), tokens.cls

  def loss(model, online, target, inputs):
    axis = inputs.axis_name
    views = list(inputs.views)
    keep_ids = kept_patches(inputs.keys, grid[0] * grid[1], m.patch_drop, m.group_size, axis)
    drop_keys = [base.stream(inputs.keys, _PATH_STREAM + v) for v in range(1, len(views))]
    (anchors, prototypes, anchor_cls), batch_stats = base.apply_train(model, online, views[1], views[2:], keep_ids,
                                                                      drop_keys, method=student)
    targets = teacher_embeddings(model, base.stop_gradient(target), views[0])
    value, metrics = losses.msn_loss(anchors, targets, prototypes, m.temperature, m.sharpen_temperature,
                                     m.sinkhorn_iterations, m.me_max_weight, m.prior, m.power_law_exponent, axis)
    return base.LossOutput(value, {"loss": value, **metrics}, batch_stats, [anchor_cls])

  return base.Method(name="msn", make_model=make_model, recipes=recipes, loss=loss,
                     ema=ema_schedule(m.base_momentum, m.momentum_stretch), ema_parts=("encoder", "projector"),
                     drop_path=True)


def defaults():
  """``msn_vits16.yaml``: head 2048-2048 with BatchNorm and GELU then 256, 1,024 prototypes, cosine temperature
  0.1, targets sharpened at 0.25 and balanced by 3 Sinkhorn-Knopp iterations, me-max weight 1 (uniform prior;
  ``power_law`` with exponent 0.25 is PMSN), 15% of the anchor's patches dropped, EMA 0.996 -> 1 linearly over
  1.25 x the run. ``group_size`` 0: the patch drop drawn once over the global batch (the configs set the
  official per-GPU batch, 64)."""
  return {"proj_hidden_dims": (2048, 2048), "proj_dim": 256, "num_prototypes": 1024, "temperature": 0.1,
          "sharpen_temperature": 0.25, "sinkhorn_iterations": 3, "me_max_weight": 1.0, "prior": "uniform",
          "power_law_exponent": 0.25, "patch_drop": 0.15, "group_size": 0, "base_momentum": 0.996,
          "momentum_stretch": 1.25}


def check(config) -> None:
  m = config.method
  if not config.model.encoder.startswith("vit"):
    config_checks.fail("model.encoder", config.model.encoder, "MSN drops patch tokens: use a ViT (vit_*)")
  if config.model.pos_embed == "rope":
    config_checks.fail("model.pos_embed", "rope", "MSN's anchors see a subset of the patches; RoPE here rotates "
                       "the whole grid: use learned or sincos")
  if not config.model.class_token or config.model.pool != "cls":
    config_checks.fail("model.pool", config.model.pool, "MSN embeds the class token: keep model.class_token and "
                       "model.pool='cls'")
  config_checks.widths(config, "method.proj_hidden_dims")
  for field in ("proj_dim", "num_prototypes"):
    config_checks.positive_int(config, f"method.{field}")
  for field in ("temperature", "sharpen_temperature"):
    config_checks.temperature(config, f"method.{field}")
  config_checks.non_negative_int(config, "method.sinkhorn_iterations")
  config_checks.in_range(config, "method.me_max_weight", 0.0, float("inf"), closed_high=False)
  if m.prior not in losses.MSN_PRIORS:
    config_checks.fail("method.prior", m.prior, f"must be one of {losses.MSN_PRIORS}")
  config_checks.in_range(config, "method.power_law_exponent", 0.0, float("inf"), closed_high=False)
  config_checks.in_range(config, "method.patch_drop", 0.0, 1.0, closed_high=False)
  config_checks.non_negative_int(config, "method.group_size")
  config_checks.in_range(config, "method.momentum_stretch", 1.0, float("inf"), closed_high=False)
  check_momentum(config)


def check_devices(config, num_devices: int) -> None:
  """A patch-drop group must not straddle devices."""
  base.check_group_size(config, num_devices)


def config_defaults() -> dict:
  """The micro ViT for 28 px images, and the official optimizer: AdamW at lr 0.001 for batch 1024 (0.00025 x
  batch / 256), warmed up from 0.2 x that (``start_lr``), a cosine to 1e-6 over 1.25 x the run, weight decay
  0.04 -> 0.4 over the same, none on the prototypes, the encoder's and head's gradients clipped to norm 3 (the
  prototypes' not), SimCLR's colour distortion at strength 0.5 with blur 0.5, rand crops (0.3, 1), focal crops
  (0.05, 0.3)."""
  return {"model.encoder": "vit_micro", "model.patch_size": 4, "optim.name": "adamw", "optim.base_lr": 2.5e-4,
          "optim.warmup_from": 0.2, "optim.min_lr": 1e-6, "optim.schedule_stretch": 1.25,
          "optim.weight_decay": 0.04, "optim.weight_decay_end": 0.4, "optim.clip_grad_norm": 3.0,
          "optim.clip_exclude": "prototypes", "optim.rules": (("prototypes", 1.0, 0.0),),
          "augment.jitter_strength": 0.5, "augment.blur_prob": 0.5, "augment.crop_scale": (0.3, 1.0),
          "augment.local_crop_scale": (0.05, 0.3), "augment.num_local_crops": 10}


def small(batch_size: int) -> dict:
  return {"method.proj_hidden_dims": (32,), "method.proj_dim": 16, "method.num_prototypes": 32,
          "augment.num_local_crops": 2, "augment.local_size": 8}
