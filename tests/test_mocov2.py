"""MoCo v2 against a transcription of the official code (facebookresearch/moco, ``moco/builder.py``): the loss
of one step on the same network outputs (values and gradients), the method's whole loss on a model, and the
queue's update; its config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.engine import train_step
from jaxssl.methods import mocov2
from jaxssl.methods.base import StepInputs, Variables
from jaxssl.ops import losses
from helpers import assert_refused, on_devices
from tiny import tiny_config


def _official_loss(q, k, queue_dk, temperature):
  """``MoCo.forward`` after the encoders, line by line in jax.numpy: ``nn.functional.normalize``, the positive
  and negative logits by einsum against the queue held as [dim, K], CrossEntropyLoss towards label 0."""
  normalize = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  q = normalize(q)
  k = jax.lax.stop_gradient(normalize(k))
  l_pos = jnp.einsum("nc,nc->n", q, k)[:, None]
  l_neg = jnp.einsum("nc,ck->nk", q, jax.lax.stop_gradient(queue_dk))
  logits = jnp.concatenate([l_pos, l_neg], axis=1) / temperature
  log_probs = jax.nn.log_softmax(logits, axis=1)
  return -jnp.mean(log_probs[:, 0])


def _official_enqueue(queue_dk, ptr, keys):
  """``_dequeue_and_enqueue`` (after concat_all_gather): the keys replace columns ptr..ptr+batch."""
  queue_dk = queue_dk.copy()
  batch = keys.shape[0]
  assert queue_dk.shape[1] % batch == 0
  queue_dk[:, ptr:ptr + batch] = keys.T
  return queue_dk, (ptr + batch) % queue_dk.shape[1]


def _unit(x, axis):
  return x / np.linalg.norm(x, axis=axis, keepdims=True)


def test_the_loss_is_the_official_codes_in_value_and_gradient_and_on_eight_devices():
  rng = np.random.default_rng(0)
  q, k = (jnp.asarray(rng.normal(size=(16, 8)), jnp.float32) for _ in range(2))
  queue_dk = _unit(rng.normal(size=(8, 64)), 0).astype(np.float32)                # the official layout
  queue = jnp.asarray(queue_dk.T)                                                  # ours: [K, D]
  ours = lambda q, k: losses.moco_queue_loss(q, k, queue, 0.2)
  official = lambda q, k: _official_loss(q, k, queue_dk, 0.2)
  np.testing.assert_allclose(float(ours(q, k)), float(official(q, k)), rtol=1e-6)
  for a, b in zip(jax.grad(ours, argnums=(0, 1))(q, k), jax.grad(official, argnums=(0, 1))(q, k)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)
  assert not np.any(np.asarray(jax.grad(ours, argnums=1)(q, k)))                   # no gradient to the keys
  sharded = on_devices(lambda a, b, axis: losses.moco_queue_loss(a, b, queue, 0.2, axis), q, k)
  np.testing.assert_allclose(float(sharded), float(ours(q, k)), rtol=1e-6)


def test_the_queue_takes_the_global_batchs_keys_as_the_official_code_on_eight_devices():
  rng = np.random.default_rng(1)
  queue_dk = _unit(rng.normal(size=(8, 64)), 0).astype(np.float32)
  keys = rng.normal(size=(16, 8)).astype(np.float32)
  expected, pointer = _official_enqueue(queue_dk, 48, _unit(keys, 1))
  enqueue = lambda z, axis: losses.enqueue(jnp.asarray(queue_dk.T), jnp.asarray(48, jnp.int32), z, axis)
  for queue, ptr in (enqueue(jnp.asarray(keys), None), on_devices(enqueue, jnp.asarray(keys))):
    np.testing.assert_allclose(np.asarray(queue).T, expected, rtol=1e-6)
    assert int(ptr) == pointer == 0


def test_the_methods_loss_is_the_official_one_on_its_query_and_key_encoders():
  """The whole loss: queries from the online network on view 1, keys from the momentum encoder on view 2 (both
  in training mode, BatchNorm over the batch, as the official encoders run), against the queue."""
  config = tiny_config("mocov2")
  trainer = train_step.build(config, total_steps=3, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  rng = np.random.default_rng(2)
  views = [jnp.asarray(rng.normal(size=(16, 16, 16, 1)), jnp.float32) for _ in range(2)]
  inputs = StepInputs(views, jax.random.split(jax.random.key(1), 16), jnp.zeros((16,), jnp.int32),
                      jnp.asarray(0, jnp.int32), state.method_state, None)
  # The key encoder differs from the query encoder (after some steps of momentum).
  target_params = jax.tree.map(lambda p: p + 0.05 * jnp.sin(jnp.arange(p.size).reshape(p.shape)), state.ema_params)
  online = lambda params: Variables(params, state.batch_stats)
  target = Variables(target_params, state.ema_batch_stats)

  def ours(params):
    return trainer.method.loss(trainer.model, online(params), target, inputs).loss

  def official(params):
    run = lambda variables, x: trainer.model.apply(variables, x, train=True, with_predictor=False,
                                                   mutable=["batch_stats"])[0][1]
    q = run({"params": params, "batch_stats": state.batch_stats}, views[0])
    k = run({"params": target_params, "batch_stats": state.ema_batch_stats}, views[1])
    return _official_loss(q, k, np.asarray(state.method_state["queue"]).T, config.method.temperature)

  np.testing.assert_allclose(float(jax.jit(ours)(state.params)), float(jax.jit(official)(state.params)), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(jax.jit(jax.grad(ours))(state.params)),
                  jax.tree.leaves(jax.jit(jax.grad(official))(state.params))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-7)
  # The queue starts as random unit keys; the method's state update writes the batch's keys at the pointer.
  assert np.allclose(np.linalg.norm(np.asarray(state.method_state["queue"]), axis=1), 1.0, atol=1e-5)


def test_official_defaults_and_config_checks():
  config = tiny_config("mocov2")
  defaults = mocov2.defaults()
  assert (defaults["queue_size"], defaults["temperature"], defaults["momentum"], defaults["proj_dim"]) == (
      65536, 0.2, 0.999, 128)
  assert mocov2.make(config).ema(jnp.asarray(5), 100) == pytest.approx(config.method.momentum)      # constant
  assert_refused(config, {"method.queue_size": 17},
                 r"method.queue_size=17: must be a positive multiple of train.batch_size \(16\)")
  assert_refused(config, {"method.queue_size": 64, "method.momentum": 1.0}, "method.momentum=1.0")
