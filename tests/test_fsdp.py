"""FSDP (parallel.fsdp): the sharding rule, the sharded step against the replicated one on 8 devices, the state
per device, and checkpoints of a sharded state restored onto other layouts."""

import collections

import jax
import jax.extend
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxssl.engine import fsdp, parallel, train_step
from jaxssl.runs import checkpoint
from helpers import mesh, run_steps, synthetic_batches
from tiny import tiny_config

MIN_SIZE = 256          # the tiny models' arrays are small: shard more of them than the default would


@pytest.mark.parametrize("shape, spec", [
    ((64, 256), P(None, "batch")), ((256, 64), P("batch")), ((3, 3, 16, 64), P(None, None, None, "batch")),
    ((100, 30), P()),              # no dimension divides by 8
    ((64,), P()),                  # small
    ((), P()),
    ((128, 128), P("batch")),      # equal dimensions: the first
])
def test_leaf_spec_splits_the_largest_divisible_dimension_of_large_arrays(shape, spec):
  assert fsdp.leaf_spec(shape, 8, min_size=MIN_SIZE) == spec
  assert fsdp.leaf_spec(shape, 1, min_size=MIN_SIZE) == P()


def _run(config, batches, sharded: bool, devices: int = 8):
  return run_steps(config, batches, devices, MIN_SIZE if sharded else 0)


# mae: a ViT, AdamW, no EMA; simclr: a ResNet with synchronised BatchNorm and LARS (per-matrix trust ratios:
# norms of whole arrays); dino: a ViT with an EMA teacher and a centre in the method state, on AdamW with the
# gradient clipped to a global norm small enough to bind (a norm over every shard of every array); mae+scan:
# MAE with model.scan_layers; ijepa: the predictor's blocks gather their shards too (its gather_axis is the
# encoder's).
@pytest.mark.parametrize("method", ["mae", pytest.param("simclr", marks=pytest.mark.slow),   # 25 s and 54 s:
                                    pytest.param("dino", marks=pytest.mark.slow), "mae+scan",  # full suite only
                                    pytest.param("ijepa", marks=pytest.mark.slow)])
def test_sharded_step_equals_the_replicated_one(method):
  method, _, scan = method.partition("+")
  config = tiny_config(method)
  config.model.scan_layers = bool(scan)           # stacked blocks [depth, ...]: split along a weight dimension
  if method == "dino":
    config.model.encoder, config.model.patch_size = "vit_micro", 4
    config.optim.name, config.optim.clip_grad_norm, config.optim.clip_mode = "adamw", 0.01, "global"
  batches = synthetic_batches(config, 3)
  replicated, losses = _run(config, batches, sharded=False)
  sharded, sharded_losses = _run(config, batches, sharded=True)
  np.testing.assert_allclose(sharded_losses, losses, rtol=1e-5)
  for tree in ("params", "opt_state", "ema_params", "batch_stats", "method_state"):
    for a, b in zip(jax.tree.leaves(getattr(sharded, tree)), jax.tree.leaves(getattr(replicated, tree))):
      # Reductions in another order: a few float32 ulps of parameters of size ~3; a sharding bug is 1e-2 or more.
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=5e-6)
  # The state really is split: every large parameter holds an eighth per device, the Adam / LARS moments too.
  split = [leaf for leaf in jax.tree.leaves(sharded.params) if leaf.size >= MIN_SIZE
           and any(d % 8 == 0 for d in leaf.shape)]
  assert split and all(leaf.addressable_shards[0].data.size * 8 == leaf.size for leaf in split)
  moments = [leaf for leaf in jax.tree.leaves(sharded.opt_state) if leaf.size >= MIN_SIZE]
  assert moments and all(not leaf.sharding.is_fully_replicated for leaf in moments)


def _collectives(jaxpr, region=None, counts=None) -> collections.Counter:
  """(primitive, 'remat' or None) -> how many all_gather / reduce_scatter equations, inside rematerialised
  regions or outside them, in a jaxpr and every jaxpr nested in it."""
  counts = collections.Counter() if counts is None else counts
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name in ("all_gather", "reduce_scatter"):
      counts[(name, region)] += 1
    for sub in jax.extend.core.jaxprs_in_params(eqn.params):
      _collectives(sub, region or ("remat" if name.startswith("remat") or name == "checkpoint" else None), counts)
  return counts


def test_vit_blocks_gather_their_own_shards_and_gather_them_again_in_the_backward_pass():
  """parallel.fsdp_per_block: the split parameters of MAE's blocks (encoder and decoder) reach the gradient half
  as shards and each block gathers its own inside a rematerialised region, so the backward pass gathers them
  again and the gather's transpose reduce-scatters their gradients; what is outside the blocks (patch
  embedding, decoder embedding and prediction) is gathered once on entry. Without it everything is."""
  config = tiny_config("mae")
  m = mesh(8)
  trainer = train_step.build(config, total_steps=1, num_classes=10)
  initial = train_step.init_state(trainer, jax.random.key(0), 1)
  state = jax.device_put(initial, fsdp.state_shardings(initial, m, MIN_SIZE))
  batch = parallel.shard_batch(synthetic_batches(config, 1)[0], m)
  specs = fsdp.state_specs(initial, 8, MIN_SIZE).params
  split = [spec for spec in jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P)) if spec != P()]
  in_blocks = sum(jax.tree.leaves(fsdp.gathered_in_blocks(specs)))
  assert 0 < in_blocks < len(split)
  traced = lambda per_block: jax.make_jaxpr(fsdp.fsdp_step(trainer, initial, m, MIN_SIZE, per_block))(state, batch)
  whole = _collectives(traced(False).jaxpr)
  assert whole == {("all_gather", None): len(split), ("reduce_scatter", None): len(split)}
  per_block = _collectives(traced(True).jaxpr)
  # The forward pass's gathers are not inside a remat region once linearised; the backward's are.
  assert per_block == {("all_gather", None): len(split), ("all_gather", "remat"): in_blocks,
                       ("reduce_scatter", "remat"): in_blocks, ("reduce_scatter", None): len(split) - in_blocks}


def _state_bytes_per_device(state) -> int:
  return sum(leaf.addressable_shards[0].data.nbytes for leaf in jax.tree.leaves(state))


def test_state_per_device_falls_towards_an_eighth():
  config = tiny_config("mae")
  m = mesh(8)
  trainer = train_step.build(config, total_steps=3)
  initial = train_step.init_state(trainer, jax.random.key(0), 1)
  replicated = _state_bytes_per_device(parallel.replicate(initial, m))
  sharded = _state_bytes_per_device(jax.device_put(initial, fsdp.state_shardings(initial, m, MIN_SIZE)))
  assert sharded < 0.2 * replicated          # 1/8 of the large arrays; the small ones stay whole


@pytest.mark.parametrize("method", ["mae", "dino", "simclr"])
def test_a_sharded_run_makes_its_state_in_place_with_the_values_made_on_one_device(method):
  """train.init_sharded (what a run with parallel.fsdp starts from): every leaf laid out as the run's
  shardings say, each device having computed only its shards, and every value init_state's to float32
  rounding (the same random bits; XLA fuses the initialisers' scaling differently under jit: 1 ulp)."""
  from jaxssl import train

  config = tiny_config(method)
  config.parallel.fsdp, config.parallel.fsdp_min_size = True, MIN_SIZE
  trainer = train_step.build(config, total_steps=3, num_classes=10)
  m = mesh(8)
  made = train.init_sharded(config, trainer, jax.random.key(0), 1, m)
  expected = train_step.init_state(trainer, jax.random.key(0), 1)
  shardings = train.state_shardings(config, expected, m)
  for a, b, sharding in zip(jax.tree.leaves(made), jax.tree.leaves(expected), jax.tree.leaves(shardings)):
    assert a.sharding == sharding
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=3e-7, atol=1e-9)
  assert any(not leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(made.params))


def test_a_sharded_checkpoint_restores_onto_other_layouts(tmp_path):
  """Saved from 8 devices with FSDP; restored onto 4 sharded, 8 replicated and 1 device, each with the same
  values and checksums that check out (they are of the whole arrays, not of one shard)."""
  config = tiny_config("dino")
  config.model.encoder, config.model.patch_size = "vit_micro", 4
  batches = synthetic_batches(config, 2)
  state, _ = _run(config, batches, sharded=True)
  saver = checkpoint.Checkpointer(str(tmp_path))
  saver.save(2, state, {"data_position": 2})
  saver.close()
  expected = jax.device_get(state)
  trainer = train_step.build(config, total_steps=2, num_classes=10)
  fresh = train_step.init_state(trainer, jax.random.key(1), 1)
  layouts = {"4 devices, sharded": lambda: jax.device_put(fresh, fsdp.state_shardings(fresh, mesh(4), MIN_SIZE)),
             "8 devices, replicated": lambda: parallel.replicate(fresh, mesh(8)),
             "1 device": lambda: parallel.replicate(fresh, mesh(1))}
  for name, target in layouts.items():
    target = target()
    restored, meta = checkpoint.Checkpointer(str(tmp_path)).restore(target)
    assert meta["data_position"] == 2, name
    for a, b, t in zip(jax.tree.leaves(restored), jax.tree.leaves(expected), jax.tree.leaves(target)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
      assert a.sharding == t.sharding, name
  # The checksums are of whole arrays: the same for the sharded state as for a replicated copy of it.
  assert checkpoint.checksums(state) == checkpoint.checksums(parallel.replicate(expected, mesh(8)))


@pytest.mark.slow
def test_a_run_with_fsdp_resumes_a_replicated_run_and_finishes(tmp_path):
  """parallel.fsdp may change on resume (it places the state, it does not change the recipe): a run
  checkpointed replicated goes on sharded and ends with the same losses to float32 rounding."""
  from jaxssl import train

  def config(steps, sharded):
    c = tiny_config("mae")
    c.train.num_steps, c.train.checkpoint_every, c.train.log_every = steps, 2, 1
    c.eval.knn_at_init = c.eval.at_end = False
    c.parallel.fsdp, c.parallel.fsdp_min_size = sharded, MIN_SIZE
    return c

  whole = train.run(config(4, False), str(tmp_path / "whole"))
  train.run(config(2, False), str(tmp_path / "split"))
  resumed = train.run(config(4, True), str(tmp_path / "split"), allow_change=("train.num_steps",))
  np.testing.assert_allclose(resumed["final_loss"], whole["final_loss"], rtol=1e-5)
