"""A tiny config (synthetic 16x16 images, the method's own small heads and sizes) for fast trainer tests."""

from jaxssl import tasks
from jaxssl.schema import defaults


def tiny_config(method: str, batch_size: int = 16):
  config = defaults.get_config(method)
  config.data.source = "synthetic"
  config.data.synthetic_size = 16
  config.augment.size = 16
  config.train.batch_size = batch_size
  config.train.num_steps = 3
  config.optim.warmup_steps = 1
  config.eval.batch_size = 64
  return defaults.override(config, tasks.small(method, batch_size))


def loss_inputs(config, n: int = 8, seed: int = 0):
  """(trainer, fresh state, StepInputs) for one loss call of a multi-crop method on n random examples: two 16 px
  global views and two 8 px local ones, at step 5."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from jaxssl.engine import train_step
  from jaxssl.methods.base import StepInputs

  trainer = train_step.build(config, total_steps=3, axis_name=None)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  rng = np.random.default_rng(seed)
  views = [jnp.asarray(rng.normal(size=(n, 16, 16, 1)), jnp.float32) for _ in range(2)] + \
          [jnp.asarray(rng.normal(size=(n, 8, 8, 1)), jnp.float32) for _ in range(2)]
  keys = jax.random.split(jax.random.key(1), n)
  inputs = StepInputs(views, keys, jnp.zeros((n,), jnp.int32), jnp.asarray(5, jnp.int32), state.method_state, None)
  return trainer, state, inputs
