import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxssl import data, train
from jaxssl.engine import parallel, train_step
from jaxssl.engine.state import target_subtree
from jaxssl.methods import byol
from jaxssl.methods import joint_embedding
from jaxssl.methods.base import StepInputs, Variables
from jaxssl.methods.joint_embedding import Outputs
from jaxssl.ops import optim
from helpers import Steps, mesh, synthetic_batches
from tiny import tiny_config

METHODS = ["simclr", "byol", "vicreg"]


_batches = synthetic_batches


def _run_shard_map(config, batches, num_devices, num_classes=0):
  steps = Steps(config, num_devices, total_steps=len(batches), num_classes=num_classes)
  losses, probe = [], []
  for metrics in steps.run(batches):
    losses.append(float(metrics["loss"]))
    probe.append([float(metrics.get("probe_loss", 0.0)), float(metrics.get("probe_acc", 0.0))])
  return jax.device_get(steps.state), losses, probe


def _run_pmap(config, batches, num_devices=8, num_classes=0):
  trainer = train_step.build(config, total_steps=len(batches), num_classes=num_classes)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  state = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (num_devices,) + x.shape), state)
  step = parallel.pmap_step(train_step.make_per_device_step(trainer))
  losses = []
  for batch in batches:
    local = {k: v.reshape((num_devices, -1) + v.shape[1:]) for k, v in batch.items()}
    state, metrics = step(state, local)
    losses.append(float(metrics["loss"][0]))
  return jax.tree.map(lambda x: x[0], jax.device_get(state)), losses


# 8 devices against 1: the gradient's sums round differently, and at initialisation the BatchNorm parameters'
# gradients are small differences of large sums (in the tiny configs the first step's differ by up to 1e-2
# relative, ~1e-4 absolute). LARS's first step has lr 0, but its momentum buffer keeps that gradient for the
# next ones. A missing psum/pmean shows as differences of order one.
DEVICES_TOLERANCE = 5e-4


def _assert_trees_close(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=atol)



def _eight_devices_as_one(config, steps: int = 3):
  """(state on 8 devices, state on 1) after ``steps`` of the same batches, asserting finite losses that agree
  (1e-4) and parameters that agree (5e-4)."""
  batches = _batches(config, steps)
  state8, losses8, _ = _run_shard_map(config, batches, 8)
  state1, losses1, _ = _run_shard_map(config, batches, 1)
  assert all(np.isfinite(losses8))
  np.testing.assert_allclose(losses8, losses1, rtol=1e-4, atol=1e-4)
  _assert_trees_close(state8.params, state1.params, 5e-4)
  return state8, state1

# vicreg in the fast subset; simclr and byol (over 40 s each on 2 cores) only in the full suite.
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.slow) if m != "vicreg" else m for m in METHODS])
def test_eight_devices_match_one_and_pmap(method):
  """8 devices == 1 device for each method; jax.pmap == shard_map (the wrapper, method-independent) and the
  online probe (8 == 1, and it learns) checked on SimCLR."""
  config = tiny_config(method)
  batches = _batches(config, 3)
  classes = 10 if method == "simclr" else 0
  state8, losses8, probe8 = _run_shard_map(config, batches, 8, classes)
  state1, losses1, probe1 = _run_shard_map(config, batches, 1, classes)
  np.testing.assert_allclose(losses8, losses1, atol=1e-4, rtol=1e-4)
  _assert_trees_close(state8.params, state1.params, DEVICES_TOLERANCE)
  _assert_trees_close(state8.batch_stats, state1.batch_stats, 1e-4)
  assert all(np.isfinite(losses8))
  # The step really trained: parameters moved.
  init = train_step.init_state(train_step.build(config, 3, num_classes=classes), jax.random.key(0), 1)
  kernel = lambda state: state.params["encoder"]["stem_conv"]["kernel"]
  assert not np.allclose(kernel(init), kernel(state8))
  if method == "simclr":
    state_pmap, losses_pmap = _run_pmap(config, batches, 8, classes)
    np.testing.assert_allclose(losses8, losses_pmap, atol=1e-5)
    _assert_trees_close(state8.params, state_pmap.params, 1e-5)
    _assert_trees_close(state8.probe_params, state1.probe_params, 1e-4)
    np.testing.assert_allclose(probe8, probe1, atol=1e-4)
    head = lambda state: state.probe_params["params"]["head"]["kernel"]
    assert not np.allclose(head(init), head(state8))
    assert probe8[-1][0] < probe8[0][0]                    # the probe's loss falls


def test_byol_target_gets_no_gradient_and_follows_ema():
  config = tiny_config("byol")
  trainer = train_step.build(config, total_steps=3)
  batch = _batches(config, 1)[0]
  m = mesh(8)
  state0 = jax.device_get(train_step.init_state(trainer, jax.random.key(0), 1))   # host copy: the step donates
  assert state0.ema_params is not None and "predictor" not in state0.ema_params

  # The loss has zero gradient with respect to the target's outputs and parameters.
  z = [jnp.ones((4, 16)), jnp.arange(64.0).reshape(4, 16)]
  byol_loss = byol._loss                      # the loss on Outputs that joint_embedding.method wraps
  def loss_of_target(target_projections):
    online = Outputs([None, None], z, [z[1] + 1.0, z[0] - 2.0])
    target = Outputs([None, None], target_projections, None)
    return byol_loss(online, target, (), None, jnp.zeros((), jnp.int32), None)[0]
  for g in jax.grad(loss_of_target)(z):
    np.testing.assert_array_equal(g, 0.0)
  views = [jnp.asarray(np.random.default_rng(i).normal(size=(4, 16, 16, 1)), jnp.float32) for i in range(2)]
  inputs = StepInputs(views, jax.random.split(jax.random.key(0), 4), jnp.zeros((4,), jnp.int32),
                      jnp.zeros((), jnp.int32), (), None)
  online = Variables(state0.params, state0.batch_stats)
  local = train_step.build(config, total_steps=3, axis_name=None)         # BatchNorm outside a mapped axis
  def loss_of_target_params(ema_params):
    return local.method.loss(local.model, online, Variables(ema_params, state0.ema_batch_stats), inputs).loss
  for g in jax.tree.leaves(jax.grad(loss_of_target_params)(state0.ema_params)):
    np.testing.assert_array_equal(g, 0.0)

  # After one step the target moved only by the EMA rule: ema1 = tau * ema0 + (1 - tau) * params1.
  step = parallel.shard_step(train_step.make_per_device_step(trainer), m)
  state1, metrics = jax.device_get(step(parallel.replicate(state0, m), parallel.shard_batch(batch, m)))
  # The NaN guard's flags and their names, known before the step runs (train_step.finite_names).
  names = train_step.finite_names(state0)
  assert len(names) == len(metrics["finite_leaves"]) and float(metrics["finite"]) == 1.0
  assert names[0] == "loss" and "gradients/encoder/stem_conv/kernel" in names
  assert "state/ema_params/projector/Dense_0/kernel" in names
  tau = float(optim.ema_momentum(0, 3, config.method.base_momentum))
  expected = jax.tree.map(lambda e, o: tau * e + (1 - tau) * o, target_subtree(state0.params, joint_embedding.TARGET_PARTS),
                          target_subtree(state1.params, joint_embedding.TARGET_PARTS))
  _assert_trees_close(state1.ema_params, expected, 1e-6)


def test_ema_momentum_schedule():
  assert float(optim.ema_momentum(0, 100, 0.996)) == pytest.approx(0.996)
  assert float(optim.ema_momentum(50, 100, 0.996)) == pytest.approx(0.998)
  assert float(optim.ema_momentum(100, 100, 0.996)) == pytest.approx(1.0)


def test_learning_rate_scales_with_batch_and_warms_up():
  config = tiny_config("simclr", batch_size=512)
  config.optim.base_lr = 0.3
  config.optim.warmup_steps = 10
  schedule = optim.learning_rate_schedule(config, total_steps=100)
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(0.6)          # 0.3 * 512 / 256
  assert float(schedule(100)) == pytest.approx(0.0, abs=1e-6)


def test_lars_excludes_bn_and_bias_from_decay_and_trust_ratio():
  config = tiny_config("simclr")
  config.optim.weight_decay = 0.5
  tx = optim.make_optimizer(config, total_steps=10)
  params = {"kernel": jnp.ones((3, 3)), "bias": jnp.ones((3,)), "scale": jnp.ones((3,))}
  zero_grads = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  for _ in range(3):                                            # past the warm-up, lr > 0
    updates, state = tx.update(zero_grads, state, params)
  assert float(jnp.abs(updates["kernel"]).sum()) > 0           # decayed
  np.testing.assert_array_equal(updates["bias"], 0.0)           # excluded
  np.testing.assert_array_equal(updates["scale"], 0.0)


def test_lars_applies_the_learning_rate_after_the_momentum_as_deepmind_byol_and_pytorch():
  """A step is lr_t x buffer, buffer = momentum x buffer + trust-ratio-scaled (gradient + decay); checked against
  that formula in NumPy through a warm-up, where optax.lars (lr before momentum) differs."""
  config = tiny_config("simclr")
  config.optim.update(base_lr=1.0, weight_decay=1e-3, momentum=0.9, trust_coefficient=0.01, warmup_steps=4)
  total = 8
  tx = optim.make_optimizer(config, total_steps=total)
  lr = optim.learning_rate_schedule(config, total)
  rng = np.random.default_rng(0)
  params = {"kernel": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "bias": jnp.zeros((4,), jnp.float32)}
  state = tx.init(params)
  ref = {k: np.asarray(v, np.float64) for k, v in params.items()}
  buffer = {k: np.zeros_like(v) for k, v in ref.items()}
  for step in range(6):
    grads = {k: rng.normal(size=v.shape) for k, v in ref.items()}
    updates, state = tx.update(jax.tree.map(lambda g: jnp.asarray(g, jnp.float32), grads), state, params)
    params = optax.apply_updates(params, updates)
    d = grads["kernel"] + config.optim.weight_decay * ref["kernel"]
    d = d * config.optim.trust_coefficient * np.linalg.norm(ref["kernel"]) / np.linalg.norm(d)
    for name, update in (("kernel", d), ("bias", grads["bias"])):       # the bias: no decay, no trust ratio
      buffer[name] = config.optim.momentum * buffer[name] + update
      ref[name] = ref[name] - float(lr(step)) * buffer[name]
    for name in ref:
      np.testing.assert_allclose(params[name], ref[name], rtol=1e-5, atol=1e-6)


def test_bfloat16_compute_runs():
  config = tiny_config("simclr")
  config.model.compute_dtype = "bfloat16"
  state, losses, _ = _run_shard_map(config, _batches(config, 2), 8)
  assert all(np.isfinite(losses))
  assert state.params["encoder"]["stem_conv"]["kernel"].dtype == jnp.float32


@pytest.mark.slow
# The methods whose step holds cross-device state or randomness beyond the loss (queues, nearest neighbours, a
# centre, whitening permutations, Sinkhorn over a queue, SIGReg's directions). SimSiam, Barlow Twins, MoCo v3 and
# SupCon add nothing to their losses' own 8-vs-1 tests (test_losses*.py) but the shared step, which
# simclr/byol/vicreg cover above.
@pytest.mark.parametrize("method", ["nnclr", "mocov2", "meanshift", "dino", "wmse", "swav", "lejepa"])
def test_more_methods_eight_devices_match_one(method):
  config = tiny_config(method)
  batches = _batches(config, 2)
  state8, losses8, _ = _run_shard_map(config, batches, 8)
  state1, losses1, _ = _run_shard_map(config, batches, 1)
  assert all(np.isfinite(losses8))
  np.testing.assert_allclose(losses8, losses1, atol=1e-4, rtol=1e-4)
  _assert_trees_close(state8.params, state1.params, DEVICES_TOLERANCE)
  _assert_trees_close(state8.method_state, state1.method_state, 1e-4)     # queues filled from the global batch
  if method in ("nnclr", "mocov2"):
    assert int(state8.method_state["pointer"]) == 2 * config.train.batch_size


def test_method_that_needs_labels_refuses_an_unlabeled_split(tmp_path, monkeypatch):
  labeled = data.synthetic(64, size=16)
  unlabeled = data.ArraySource(labeled.images)
  dataset = data.Dataset(unlabeled, labeled, labeled, 10)
  with pytest.raises(data.DataError, match="config.method.name='supcon' needs labels"):
    train.run(tiny_config("supcon"), str(tmp_path / "run"), dataset=dataset)
  assert not (tmp_path / "run").exists()


def test_dino_with_a_vit_keeps_its_last_layer_frozen_for_its_steps_then_trains():
  config = tiny_config("dino")                       # last layer frozen for 2 steps; 16 px global, 8 px local crops
  config.model.encoder, config.model.patch_size = "vit_micro", 4
  steps = Steps(config, num_devices=1)
  last = lambda s: np.asarray(s.params["projector"]["last_layer"])
  first_hidden = lambda s: np.asarray(jax.tree.leaves(s.params["projector"])[0])
  initial, initial_hidden = last(steps.state), first_hidden(steps.state)
  for i, batch in enumerate(_batches(config, 3)):
    steps.step(batch)
    if i < 2:
      np.testing.assert_array_equal(last(steps.state), initial)
  assert not np.array_equal(first_hidden(steps.state), initial_hidden)
  assert not np.array_equal(last(steps.state), initial)


@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
def test_swav_without_a_queue_trains_and_checkpoints(tmp_path):
  """queue_size 0 switches SwAV's queue off; the method state then holds no (unsaveable) empty array."""
  config = tiny_config("swav")
  config.method.queue_size = 0
  config.train.num_steps = 2
  config.eval.at_end = config.eval.knn_at_init = False
  results = train.run(config, str(tmp_path / "run"))
  assert np.isfinite(results["final_loss"])
  assert (tmp_path / "run" / "checkpoints" / "2").exists()
