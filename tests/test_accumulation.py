"""Gradient accumulation (train.grad_accum_steps): the same step as without for a per-example loss, refused for
losses and BatchNorm that couple the batch unless the user accepts it."""

import jax
import numpy as np
import pytest

from jaxssl.schema import validate
from helpers import run_steps, synthetic_batches
from tiny import tiny_config


def _run(config, steps=3, devices=8, sharded=False):
  state, losses = run_steps(config, synthetic_batches(config, steps), devices, 256 if sharded else 0)
  return jax.device_get(state), losses


@pytest.mark.parametrize("devices, k, sharded", [(8, 2, False), (8, 2, True)])
def test_accumulated_mae_step_equals_the_whole_batch_step(devices, k, sharded):
  """MAE's loss is a mean over removed patches, the same number per image: k micro-batches of each device's
  share give the step of the whole batch (each example keeps its global index, so its views and mask)."""
  config = tiny_config("mae")
  whole, losses = _run(config, devices=devices)
  config.train.grad_accum_steps = k
  validate.validate(config, num_devices=devices)
  accumulated, accumulated_losses = _run(config, devices=devices, sharded=sharded)
  np.testing.assert_allclose(accumulated_losses, losses, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(accumulated.params), jax.tree.leaves(whole.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)   # Adam magnifies rounding where a gradient is ~0


@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
def test_a_coupled_method_accumulates_only_when_allowed():
  config = tiny_config("simclr")
  config.train.grad_accum_steps = 2
  with pytest.raises(validate.ConfigError, match=r"config.train.grad_accum_steps=2: method.name='simclr' has a "
                     r"loss that couples the examples of a batch .*train.allow_coupled_accumulation=True"):
    validate.validate(config, num_devices=8)
  config.train.allow_coupled_accumulation = True
  validate.validate(config, num_devices=8)
  _, losses = _run(config, steps=1)               # BN statistics advance per micro-batch; still finite
  config.train.grad_accum_steps = 1
  _, whole = _run(config, steps=1)
  # The micro-batches are real: SimCLR's loss over 8 examples (fewer negatives) is not the loss over 16.
  assert all(np.isfinite(losses)) and abs(losses[0] - whole[0]) > 0.1


def test_accumulation_refusals_name_the_field():
  config = tiny_config("mae")                     # batch 16: 2 per device on 8 devices
  config.train.grad_accum_steps = 4
  with pytest.raises(validate.ConfigError, match=r"config.train.grad_accum_steps=4: must divide the batch per "
                     r"device, 2 \(train.batch_size=16 over 8 devices\)"):
    validate.validate(config, num_devices=8)
  config.train.grad_accum_steps = 0
  with pytest.raises(validate.ConfigError, match="config.train.grad_accum_steps=0: must be a positive integer"):
    validate.validate(config, num_devices=8)
  resnet = tiny_config("classifier")
  resnet.train.grad_accum_steps = 2
  resnet.method.mixup_alpha = resnet.method.cutmix_alpha = 0.0
  with pytest.raises(validate.ConfigError, match="model.encoder='small_resnet' has BatchNorm"):
    validate.validate(resnet, num_devices=8)
  resnet.method.mixup_alpha = 0.8
  with pytest.raises(validate.ConfigError, match="couples the examples of a batch"):
    validate.validate(resnet, num_devices=8)
