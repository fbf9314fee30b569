"""The state item's handler (jaxssl.runs.checkpoint: orbax's PyTreeCheckpointHandler with small arrays written by one
replica) reads checkpoints written by orbax's StandardCheckpointHandler, as jaxssl wrote them before, and writes
ones StandardCheckpointer reads."""

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxssl.runs import checkpoint


def _state():
  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  replicated = NamedSharding(mesh, P())
  # 16 MiB: over 8 replicas its slices are 2 MiB, so it is written by all of them; "small" by one
  big = np.arange(8 * 512 * 1024, dtype=np.float32).reshape(8 * 512, 1024)
  return {"small": jax.device_put(jnp.arange(16.0), replicated), "big": jax.device_put(big, replicated),
          "step": jax.device_put(jnp.array(7, jnp.int32), replicated)}


def test_reads_what_the_standard_handler_wrote_and_writes_what_it_reads(tmp_path):
  state = _state()
  old = ocp.CheckpointManager(tmp_path / "old" / "checkpoints")
  old.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave({"step": 3})))
  old.wait_until_finished()
  old.close()
  restored, meta = checkpoint.Checkpointer(str(tmp_path / "old")).restore(state)
  assert meta["step"] == 3
  for name in state:
    np.testing.assert_array_equal(np.asarray(restored[name]), np.asarray(state[name]))
    assert restored[name].sharding == state[name].sharding

  new = checkpoint.Checkpointer(str(tmp_path / "new"))
  new.save(5, state, {"step": 5})
  new.close()
  read = ocp.StandardCheckpointer().restore(tmp_path / "new" / "checkpoints" / "5" / "state")
  for name in state:
    np.testing.assert_array_equal(np.asarray(read[name]), np.asarray(state[name]))
