"""The optimizer built from rules on parameter paths (jaxssl/ops/optim.py): layer-wise decay as MAE's official
``param_groups_lrd``, multipliers, frozen steps, clipping, schedules, the unchanged defaults, and validation."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxssl import train
from jaxssl.common.config_checks import ConfigError
from jaxssl.models import make_encoder
from jaxssl.ops import optim
from jaxssl.schema import defaults, validate
from tiny import tiny_config


# --- the official rule, written out from MAE's util/lr_decay.py (param_groups_lrd, get_layer_id_for_vit) ---

def _official_layer_id(name: str, num_layers: int) -> int:
  if name in ["cls_token", "pos_embed"]:
    return 0
  elif name.startswith("patch_embed"):
    return 0
  elif name.startswith("blocks"):
    return int(name.split(".")[1]) + 1
  else:
    return num_layers


def _official_param_groups_lrd(named_shapes: dict, weight_decay: float, no_weight_decay_list, layer_decay: float,
                               depth: int) -> dict:
  """name -> (lr_scale, weight_decay) of every parameter."""
  num_layers = depth + 1
  layer_scales = [layer_decay ** (num_layers - i) for i in range(num_layers + 1)]
  out = {}
  for n, shape in named_shapes.items():
    this_decay = 0.0 if len(shape) == 1 or n in no_weight_decay_list else weight_decay
    out[n] = (layer_scales[_official_layer_id(n, num_layers)], this_decay)
  return out


def _timm_name(path: str) -> str:
  """Our path -> timm's parameter name: encoder/block_3/attn/qkv/kernel -> blocks.3.attn.qkv.weight."""
  name = path.removeprefix("encoder/").replace("/", ".")
  name = re.sub(r"block_(\d+)", r"blocks.\1", name)
  name = name.replace("patch_embed.", "patch_embed.proj.")
  return re.sub(r"\.(kernel|scale)$", ".weight", name)


def _vit_classifier_params(encoder: str = "vit_base", size: int = 224, patch: int = 16, classes: int = 1000,
                           pool: str = "cls"):
  """Abstract parameters of a ViT encoder plus a linear head, laid out as the fine-tuning model's."""
  config = defaults.get_config("mae")
  config.model.encoder, config.model.patch_size, config.model.pos_embed = encoder, patch, "learned"
  config.model.pool = pool
  vit = make_encoder(config.model, size, None, jnp.float32)
  encoder_params = jax.eval_shape(lambda: vit.init(jax.random.key(0), jnp.zeros((1, size, size, 3))))["params"]
  dim = encoder_params["cls_token"].shape[-1]
  head = {"kernel": jax.ShapeDtypeStruct((dim, classes), jnp.float32),
          "bias": jax.ShapeDtypeStruct((classes,), jnp.float32)}
  return {"encoder": encoder_params, "head": head}


@pytest.mark.parametrize("pool", ["cls", "global"])
def test_layer_decay_of_a_depth_12_vit_equals_the_official_param_groups_lrd(pool):
  params = _vit_classifier_params(pool=pool)
  # MAE's global pool: fc_norm (layer depth + 1, no weight decay) in place of the final norm
  assert ("fc_norm" in params["encoder"], "norm" in params["encoder"]) == (pool == "global", pool != "global")
  paths = optim.param_paths(params)
  assert optim.vit_depth(paths) == 12
  rules = (optim.Rule(r"encoder/(cls_token|pos_embed)", 1.0, 0.0),)    # MAE's no_weight_decay_list
  settings = optim.settings_of(params, rules, layer_decay=0.65)
  shapes = {_timm_name(p): leaf.shape for p, leaf in zip(paths, jax.tree.leaves(params))}
  assert "blocks.11.mlp.fc2.weight" in shapes and "patch_embed.proj.weight" in shapes and "head.bias" in shapes
  official = _official_param_groups_lrd(shapes, 0.05, {"pos_embed", "cls_token", "dist_token"}, 0.65, depth=12)
  assert len(official) == len(settings) == len(paths)
  for path, s in zip(paths, settings):
    lr_scale, decay = official[_timm_name(path)]
    assert s.lr_mult == pytest.approx(lr_scale, rel=1e-12), path
    assert 0.05 * s.wd_mult == decay, path
  by_path = dict(zip(paths, settings))
  assert by_path["head/kernel"].lr_mult == 1.0
  assert by_path["encoder/patch_embed/kernel"].lr_mult == pytest.approx(0.65 ** 13)
  assert by_path["encoder/block_0/attn/qkv/kernel"].lr_mult == pytest.approx(0.65 ** 12)


def _sgd_config(**optim_fields):
  config = defaults.get_config("simclr")
  config.optim.name, config.optim.momentum, config.optim.warmup_steps = "sgd", 0.0, 0
  config.optim.weight_decay = 0.0
  for k, v in optim_fields.items():
    config.optim[k] = v
  return config


def _tree():
  ones = lambda *shape: jnp.ones(shape, jnp.float32)
  return {"encoder": {"patch_embed": {"kernel": ones(2, 2), "bias": ones(2)},
                      "block_0": {"attn": {"kernel": ones(2, 2)}}, "block_1": {"attn": {"kernel": ones(2, 2)}},
                      "norm": {"scale": ones(2)}},
          "head": {"kernel": ones(2, 3), "bias": ones(3)}}


def test_each_update_carries_its_learning_rate_multiplier():
  config = _sgd_config(layer_decay=0.5, rules=(("head/bias", 0.25),))
  params = _tree()
  tx = optim.make_optimizer(config, total_steps=10)
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, params), tx.init(params), params)
  peak = optim.peak_learning_rate(config)
  mults = jax.tree.map(lambda u: float(-u.ravel()[0] / peak), updates)
  # depth 2: embedding layer 0 -> 0.5 ** 3, block b -> 0.5 ** (2 - b), everything after -> 1.
  assert mults["encoder"]["patch_embed"]["kernel"] == pytest.approx(0.125)
  assert mults["encoder"]["block_0"]["attn"]["kernel"] == pytest.approx(0.25)
  assert mults["encoder"]["block_1"]["attn"]["kernel"] == pytest.approx(0.5)
  assert mults["encoder"]["norm"]["scale"] == pytest.approx(1.0)
  assert mults["head"]["kernel"] == pytest.approx(1.0)
  assert mults["head"]["bias"] == pytest.approx(0.25)     # the rule times the layer's 1


def test_frozen_parameters_do_not_move_for_their_steps_then_train():
  config = _sgd_config(rules=(("head/.*", 1.0, 1.0, 2),))
  params = _tree()
  tx = optim.make_optimizer(config, total_steps=10)
  state = tx.init(params)
  grads = jax.tree.map(jnp.ones_like, params)
  for step in range(3):
    updates, state = tx.update(grads, state, params)
    head_moves = bool(jnp.any(updates["head"]["kernel"] != 0))
    assert head_moves == (step >= 2), step
    assert bool(jnp.all(updates["encoder"]["block_0"]["attn"]["kernel"] != 0))


def _torch_step_with_skipped_parameters(name, params, grads, state, frozen, lr, wd, b1=0.9, b2=0.999, eps=1e-8,
                                        momentum=0.9):
  """One step of torch.optim.AdamW / SGD(momentum, weight_decay) written out in numpy, on a dict of leaves; the
  names in ``frozen`` have ``.grad = None`` (DINO's cancel_gradients_last_layer) and are skipped: no state, no
  decay, no step count. ``state``: name -> per-parameter state, updated in place."""
  out = {}
  for k, p in params.items():
    if k in frozen:
      out[k] = p
      continue
    g, st = grads[k], state.setdefault(k, {})
    if name == "adamw":
      st["step"] = st.get("step", 0) + 1
      st["m"] = b1 * st.get("m", 0.0) + (1 - b1) * g
      st["v"] = b2 * st.get("v", 0.0) + (1 - b2) * g * g
      decayed = p * (1 - lr * wd) if p.ndim > 1 else p
      denom = np.sqrt(st["v"]) / np.sqrt(1 - b2 ** st["step"]) + eps
      out[k] = decayed - lr / (1 - b1 ** st["step"]) * st["m"] / denom
    else:
      d = g + wd * p if p.ndim > 1 else g
      st["buf"] = d.copy() if "buf" not in st else momentum * st["buf"] + d
      out[k] = p - lr * st["buf"]
  return out


@pytest.mark.parametrize("name", ["adamw", "sgd"])
def test_a_frozen_parameter_is_skipped_as_torch_skips_a_parameter_without_gradient(name):
  """DINO's last layer in its first epoch: torch's optimizers skip it (no moments, no weight decay, no step
  count), so after it thaws its Adam bias correction counts its own steps. Five steps, frozen for the first
  two, against torch's rule written out; an optimizer whose moments saw the frozen steps' gradients, or whose
  bias correction counts the run's steps, is off by about 1e-2 at the first thawed step (Adam and SGD)."""
  config = defaults.get_config("dino")
  o = config.optim
  o.name, o.base_lr, o.weight_decay, o.warmup_steps, o.min_lr, o.momentum = name, 0.01 * 256 / 64, 0.04, 0, 0.0, 0.9
  o.clip_grad_norm, config.train.batch_size = 0.0, 64
  o.rules = (("last/.*", 1.0, 1.0, 2),)
  rng = np.random.default_rng(0)
  params = {"last": {"kernel": rng.normal(size=(3, 4))}, "body": {"kernel": rng.normal(size=(4, 4)),
                                                                  "bias": rng.normal(size=4)}}
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  total = 5
  tx = optim.make_optimizer(config, total_steps=total)
  schedule = optim.learning_rate_schedule(config, total)
  state = tx.init(params)
  ours = params
  flat = lambda tree: {optim.path_of(p): np.asarray(x, np.float64) for p, x in
                       jax.tree_util.tree_flatten_with_path(tree)[0]}
  theirs, torch_state = flat(params), {}
  for step in range(total):
    grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), params)
    updates, state = tx.update(grads, state, ours)
    ours = optax.apply_updates(ours, updates)
    frozen = {"last/kernel"} if step < 2 else set()
    theirs = _torch_step_with_skipped_parameters(name, theirs, flat(grads), torch_state, frozen,
                                                 float(schedule(step)), o.weight_decay, momentum=o.momentum)
    for path, value in flat(ours).items():
      np.testing.assert_allclose(value, theirs[path], rtol=2e-6, atol=2e-6, err_msg=f"{path} step {step}")
  assert not np.allclose(flat(ours)["last/kernel"], flat(params)["last/kernel"])      # it did train at the end


def test_weight_decay_multipliers_and_the_1d_default():
  config = _sgd_config(weight_decay=0.1, rules=(("encoder/block_0/.*", 1.0, 0.5), ("head/bias", 1.0, 3.0)))
  params = _tree()
  tx = optim.make_optimizer(config, total_steps=10)
  updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)   # decay only
  decay = jax.tree.map(lambda u: float(-u.ravel()[0] / optim.peak_learning_rate(config)), updates)
  assert decay["encoder"]["block_0"]["attn"]["kernel"] == pytest.approx(0.05)
  assert decay["encoder"]["block_1"]["attn"]["kernel"] == pytest.approx(0.1)
  assert decay["encoder"]["norm"]["scale"] == 0.0          # 1-D: never decayed
  assert decay["head"]["bias"] == 0.0                      # a multiplier cannot switch a 1-D parameter's decay on


def _dino_cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
  """DINO's utils.cosine_scheduler, written out."""
  warmup_schedule = np.array([])
  warmup_iters = warmup_epochs * niter_per_ep
  if warmup_epochs > 0:
    warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
  iters = np.arange(epochs * niter_per_ep - warmup_iters)
  schedule = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
  return np.concatenate((warmup_schedule, schedule))


def test_weight_decay_schedule_is_dinos_cosine_and_is_applied():
  config = _sgd_config(weight_decay=0.04, weight_decay_end=0.4)
  total = 20
  schedule = optim.weight_decay_schedule(config, total)
  expected = _dino_cosine_scheduler(0.04, 0.4, epochs=4, niter_per_ep=5)
  np.testing.assert_allclose([float(schedule(t)) for t in range(total)], expected, rtol=1e-6)
  params = _tree()
  tx = optim.make_optimizer(config, total_steps=total)
  state = tx.init(params)
  lr = optim.learning_rate_schedule(config, total)
  zeros = jax.tree.map(jnp.zeros_like, params)
  for t in range(total):
    updates, state = tx.update(zeros, state, params)
    got = float(-updates["head"]["kernel"][0, 0])
    assert got == pytest.approx(float(lr(t)) * expected[t], rel=1e-5, abs=1e-12), t
  assert optim.weight_decay_schedule(_sgd_config(weight_decay=0.05), total)(7) == pytest.approx(0.05)


def test_learning_rate_floor():
  config = _sgd_config(min_lr=1e-3)
  config.optim.warmup_steps = 2
  schedule = optim.learning_rate_schedule(config, 10)
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(2)) == pytest.approx(optim.peak_learning_rate(config))


def test_global_clipping_equals_optax_and_per_parameter_clipping_bounds_each_leaf():
  params = _tree()
  grads = jax.tree.map(lambda p: 3.0 * jnp.arange(p.size, dtype=jnp.float32).reshape(p.shape), params)
  config = _sgd_config(clip_grad_norm=1.0)
  tx = optim.make_optimizer(config, total_steps=10)
  updates, _ = tx.update(grads, tx.init(params), params)
  clipped, _ = optax.clip_by_global_norm(1.0).update(grads, optax.EmptyState())
  peak = optim.peak_learning_rate(config)
  jax.tree.map(lambda u, c: np.testing.assert_allclose(-u / peak, c, rtol=1e-6), updates, clipped)

  per = optim.clip_per_parameter(1.0)
  clipped, _ = per.update(grads, per.init(params))
  for g, c in zip(jax.tree.leaves(grads), jax.tree.leaves(clipped)):
    norm = float(jnp.linalg.norm(g))
    if norm > 1.0:
      assert float(jnp.linalg.norm(c)) == pytest.approx(1.0, rel=1e-5)
      np.testing.assert_allclose(c * norm, g, rtol=1e-4, atol=1e-5)    # the direction is kept
    else:
      np.testing.assert_array_equal(c, g)


def _random_grads(params, seed):
  leaves, treedef = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree_util.tree_unflatten(treedef, [jax.random.normal(k, p.shape) for k, p in zip(keys, leaves)])


def _run(tx, params, steps=3):
  state = tx.init(params)
  for t in range(steps):
    updates, state = tx.update(_random_grads(params, t), state, params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize("name", ["adamw", "lars", "sgd"])
def test_without_rules_the_optimizer_is_bitwise_the_one_before_them(name):
  """No rules, clipping or schedules: the same numbers as optax's AdamW / SGD and the LARS chain that jaxssl
  used before the rules (weight decay masked to ndim > 1)."""
  config = defaults.get_config("simclr")
  config.optim.name, config.optim.weight_decay = name, 0.01
  total = 10
  lr = optim.learning_rate_schedule(config, total)
  mask = lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  o = config.optim
  before = {
      "adamw": optax.adamw(lr, b1=o.b1, b2=o.b2, weight_decay=o.weight_decay, mask=mask),
      "sgd": optax.chain(optax.add_decayed_weights(o.weight_decay, mask=mask), optax.sgd(lr, momentum=o.momentum)),
      "lars": optax.chain(optax.add_decayed_weights(o.weight_decay, mask=mask),
                          optax.masked(optax.scale_by_trust_ratio(trust_coefficient=o.trust_coefficient), mask),
                          optax.trace(decay=o.momentum), optax.scale_by_learning_rate(lr)),
  }[name]
  params = _random_grads(_tree(), 99)
  jax.tree.map(np.testing.assert_array_equal, _run(optim.make_optimizer(config, total), params),
               _run(before, params))
  # The same state structure too: checkpoints saved before the rules existed still restore.
  assert (jax.tree.structure(optim.make_optimizer(config, total).init(params))
          == jax.tree.structure(before.init(params)))


@pytest.mark.parametrize("field,value,message", [
    ("rules", (("encoder/(", 1.0),), "config.optim.rules[0]=('encoder/(', 1.0): bad regular expression"),
    ("rules", (("head/.*", -1.0),), "config.optim.rules[0]=('head/.*', -1.0): its lr_mult must be"),
    ("rules", (("head/.*", 1.0, -0.5),), "its wd_mult must be a finite number >= 0"),
    ("rules", (("head/.*", 1.0, 1.0, 1.5),), "its frozen_steps must be an integer >= 0"),
    ("rules", (("head/.*", 1.0, 1.0, 2, 5),), "must be a tuple (pattern, lr_mult=1.0"),
    ("rules", ((3, 1.0),), "its pattern must be a string"),
    ("layer_decay", 0.0, "config.optim.layer_decay=0.0: must be in (0, 1]"),
    ("layer_decay", 1.5, "config.optim.layer_decay=1.5"),
    ("clip_grad_norm", -1.0, "config.optim.clip_grad_norm=-1.0"),
    ("clip_mode", "norm", "config.optim.clip_mode='norm': use one of 'global', 'per_parameter'"),
    ("min_lr", -1e-6, "config.optim.min_lr=-1e-06"),
    ("min_lr", 5.0, "config.optim.min_lr=5.0: must be below the peak learning rate"),
])
def test_bad_optimizer_fields_are_one_line(field, value, message):
  config = defaults.get_config("simclr")
  config.optim[field] = value
  with pytest.raises(ConfigError) as e:
    validate.validate(config, num_devices=1)
  assert message in str(e.value) and "\n" not in str(e.value)


def test_rules_must_cover_what_they_claim():
  params = _tree()
  config = _sgd_config(rules=(("encoder/.*", 0.5), ("projector/.*", 0.1)))
  with pytest.raises(ConfigError, match=r"config.optim.rules\[1\]=\('projector/.\*', 0.1\): matches no parameter "
                                        r"\(paths look like encoder/"):
    optim.check_against_params(config, params)
  config = _sgd_config(rules=(("encoder/.*", 0.5), ("encoder/norm/scale", 0.1)))
  with pytest.raises(ConfigError, match=r"rules\[1\].*every parameter it matches is taken by an earlier rule"):
    optim.check_against_params(config, params)
  config = _sgd_config(rules=(("encoder/block_0/.*", 0.5), ("head/.*", 0.1)))
  optim.check_against_params(config, params)             # each covers something


def test_layer_decay_on_a_resnet_is_refused():
  config = tiny_config("simclr")
  config.optim.layer_decay = 0.75
  params = {"encoder": {"conv1": {"kernel": jnp.zeros((3, 3, 1, 8))}}}
  with pytest.raises(ConfigError, match="config.optim.layer_decay=0.75: needs a ViT encoder"):
    optim.check_against_params(config, params)


def test_a_run_with_a_rule_that_matches_nothing_stops_before_the_workdir_exists(tmp_path):
  config = tiny_config("simclr")
  config.optim.rules = (("encoder/nothing_here/.*", 0.1),)
  with pytest.raises(ConfigError, match=r"config.optim.rules\[0\].*matches no parameter"):
    train.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_layer_decay_with_stacked_blocks_is_refused():
  config = tiny_config("mae")
  config.optim.layer_decay, config.model.scan_layers = 0.75, True
  params = {"encoder": {"blocks": {"block": {"mlp": {"fc1": {"kernel": jnp.zeros((4, 8, 32))}}}}}}
  with pytest.raises(ConfigError, match="config.optim.layer_decay=0.75: needs the blocks one by one .* "
                                        "model.scan_layers=True stacks them"):
    optim.check_against_params(config, params)
