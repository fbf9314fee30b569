"""jaxssl.models.conv: the CPU-friendly backward pass gives lax.conv_general_dilated's values and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jaxssl import models
from jaxssl.models import conv

NHWC = ("NHWC", "HWIO", "NHWC")


def _loss(conv_fn, x, kernel, strides, padding):
  y = conv_fn(x, kernel, strides, padding, dimension_numbers=NHWC)
  # A non-linear function of y so that every output pixel gets a different gradient.
  return jnp.sum(jnp.sin(y) * jnp.arange(y.size, dtype=y.dtype).reshape(y.shape) / y.size)


@pytest.mark.parametrize("batch,size,cin,cout,k,stride,padding", [
    (32, 8, 3, 5, 3, 1, "SAME"),
    (32, 8, 3, 5, 3, 2, "SAME"),          # even input, stride 2: SAME pads (0, 1)
    (48, 7, 4, 6, 3, 2, "SAME"),          # odd input; batch 48 -> 3 chunks of 16
    (20, 9, 2, 3, 3, 2, "VALID"),         # batch not a multiple of 16: one chunk
    (32, 8, 4, 8, 1, 2, "SAME"),          # the 1x1 strided shortcut
    (16, 15, 3, 4, 7, 2, ((3, 3), (3, 3))),  # the ImageNet stem
    (16, 6, 2, 2, 3, 3, ((2, 0), (1, 2))),   # asymmetric padding, stride 3
])
def test_values_and_gradients_equal_lax(batch, size, cin, cout, k, stride, padding):
  kx, kk = jax.random.split(jax.random.key(0))
  x = jax.random.normal(kx, (batch, size, size, cin))
  kernel = jax.random.normal(kk, (k, k, cin, cout)) / np.sqrt(k * k * cin)
  strides = (stride, stride)
  expected = lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=NHWC)
  got = conv.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=NHWC)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)

  grad = lambda fn: jax.jit(jax.grad(functools.partial(_loss, fn), argnums=(0, 1)), static_argnums=(2, 3))
  expected_dx, expected_dk = grad(lax.conv_general_dilated)(x, kernel, strides, padding)
  dx, dk = grad(conv.conv_general_dilated)(x, kernel, strides, padding)
  np.testing.assert_allclose(dx, expected_dx, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(dk, expected_dk, rtol=1e-4, atol=1e-5)


def test_other_convolutions_fall_back_to_lax():
  x = jax.random.normal(jax.random.key(1), (2, 9, 9, 4))
  kernel = jax.random.normal(jax.random.key(2), (3, 3, 2, 4))     # two feature groups
  args = dict(dimension_numbers=NHWC, feature_group_count=2, rhs_dilation=(2, 2))
  np.testing.assert_array_equal(conv.conv_general_dilated(x, kernel, (1, 1), "SAME", **args),
                                lax.conv_general_dilated(x, kernel, (1, 1), "SAME", **args))


@pytest.mark.parametrize("stem", ["cifar", "imagenet"])
def test_resnet_with_cpu_conv_equals_xla_conv(stem):
  """Same parameters, same features, same gradients (BatchNorm in training mode)."""
  x = jax.random.uniform(jax.random.key(3), (16, 32, 32, 3))
  nets = {impl: models.ResNet(stage_sizes=(1, 1), block=models.resnet.BasicBlock, widths=(8, 16), stem=stem,
                              conv=impl) for impl in ("xla", "cpu")}
  variables = nets["xla"].init(jax.random.key(4), x)
  assert jax.tree.structure(variables) == jax.tree.structure(nets["cpu"].init(jax.random.key(4), x))

  def loss(params, net):
    features, _ = net.apply({**variables, "params": params}, x, mutable=["batch_stats"])
    return jnp.sum(jnp.tanh(features) * jnp.arange(features.shape[-1]))

  for (a, ga), (b, gb) in [(jax.value_and_grad(loss)(variables["params"], nets["xla"]),
                            jax.value_and_grad(loss)(variables["params"], nets["cpu"]))]:
    np.testing.assert_allclose(a, b, rtol=1e-5)
    for leaf_a, leaf_b in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
      # Gradients up to ~25 summed in another order: float32 rounding reaches ~1e-5 near zero.
      np.testing.assert_allclose(leaf_a, leaf_b, rtol=1e-4, atol=5e-5)


def test_auto_picks_the_cpu_path_on_cpu():
  assert jax.default_backend() == "cpu"
  assert models.conv_implementation("auto") == "cpu"
  assert models.conv_implementation("xla") == "xla"
