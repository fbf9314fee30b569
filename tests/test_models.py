import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxssl.models import MLP, ResNet18, ResNet50, SmallResNet
from helpers import AXIS, mesh


@pytest.mark.parametrize("module,stem,size,dim", [
    (SmallResNet, "cifar", 28, 128), (ResNet18, "cifar", 32, 512), (ResNet18, "imagenet", 64, 512),
    (ResNet50, "cifar", 16, 2048), (ResNet50, "imagenet", 32, 2048)])
def test_resnet_output_shapes(module, stem, size, dim):
  model = module(stem=stem)
  x = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  out = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert out.shape == (2, dim)


def test_small_resnet_forward_and_representation_dims():
  model = SmallResNet()
  x = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
  variables = model.init(jax.random.key(1), x, train=False)
  h, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
  assert h.shape == (4, 128) and bool(jnp.all(jnp.isfinite(h)))


def test_imagenet_stem_downsamples_by_four():
  model = SmallResNet(stem="imagenet")
  x = jnp.zeros((1, 32, 32, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  _, state = model.apply(variables, x, train=False, capture_intermediates=True, mutable=["intermediates"])
  stem_out = state["intermediates"]["stem_conv"]["__call__"][0]
  assert stem_out.shape == (1, 16, 16, 16)


def test_mlp_head_shapes():
  head = MLP(hidden_dims=(64, 64), output_dim=32)
  x = jnp.ones((5, 16))
  variables = head.init(jax.random.key(0), x, train=False)
  assert head.apply(variables, x, train=False).shape == (5, 32)


def test_batchnorm_is_synchronised_across_devices():
  """Training-mode BN over 8 devices with axis_name normalises with global statistics: same as one device."""
  x = jax.random.normal(jax.random.key(0), (32, 8, 8, 3)) * 3 + 1
  plain = SmallResNet()
  variables = plain.init(jax.random.key(1), x[:2], train=False)
  expected, expected_state = plain.apply(variables, x, train=True, mutable=["batch_stats"])

  synced = SmallResNet(axis_name=AXIS)
  m = mesh(8)

  def local(v, xs):
    return synced.apply(v, xs, train=True, mutable=["batch_stats"])

  mapped = jax.jit(jax.shard_map(local, mesh=m, in_specs=(P(), P(AXIS)), out_specs=(P(AXIS), P()),
                                 check_vma=False))
  out, state = mapped(variables, jax.device_put(x, NamedSharding(m, P(AXIS))))
  np.testing.assert_allclose(out, expected, atol=1e-4)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(expected_state)):
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_vit_forward_any_grid_and_gradients():
  from jaxssl.models import ViTMicro

  vit = ViTMicro(patch_size=4, base_grid=4)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 16, 16, 1)), jnp.float32)
  variables = vit.init(jax.random.key(0), x)
  assert vit.apply(variables, x).shape == (3, 64)
  small = vit.apply(variables, x[:, :8, :8])                  # a local crop: 2x2 patches, interpolated positions
  assert small.shape == (3, 64) and np.all(np.isfinite(small))
  grads = jax.grad(lambda p: vit.apply({"params": p}, x).sum())(variables["params"])
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  assert float(jnp.abs(grads["pos_embed"]).sum()) > 0 and float(jnp.abs(grads["cls_token"]).sum()) > 0


def test_resnet_remat_keeps_names_values_gradients_and_synchronised_statistics():
  """nn.remat per residual block: the same parameter paths (checkpoints fit either way), loss, gradients and
  BN statistics, with BN synchronised over 8 devices (its psum runs again in the recomputation)."""
  x = jax.random.uniform(jax.random.key(0), (16, 16, 16, 3))
  plain, remat = SmallResNet(axis_name=AXIS), SmallResNet(axis_name=AXIS, remat=True)
  variables = SmallResNet().init(jax.random.key(1), x[:2], train=False)
  assert jax.tree.structure(remat.init(jax.random.key(1), x[:2], train=False)) == jax.tree.structure(variables)
  m = mesh(8)

  def grads(model):
    def per_device(x):
      def loss(params):
        out, updates = model.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
        return jnp.mean(out ** 2), updates["batch_stats"]
      (value, stats), g = jax.value_and_grad(loss, has_aux=True)(variables["params"])
      return jax.lax.pmean(value, AXIS), jax.lax.pmean(g, AXIS), stats
    mapped = jax.shard_map(per_device, mesh=m, in_specs=P(AXIS), out_specs=P(), check_vma=False)
    return jax.jit(mapped)(jax.device_put(x, NamedSharding(m, P(AXIS))))

  for a, b in zip(jax.tree.leaves(grads(plain)), jax.tree.leaves(grads(remat))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
  forward = lambda model: str(jax.make_jaxpr(lambda p: model.apply({**variables, "params": p}, x[:2], train=True,
                                                                   mutable=["batch_stats"])[0].sum())(
      variables["params"]))
  # One remat per residual block.
  assert forward(SmallResNet(remat=True)).count("remat") == 4 and "remat" not in forward(SmallResNet())
