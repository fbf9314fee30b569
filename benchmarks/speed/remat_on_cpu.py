"""Whether XLA's memory analysis on this backend shows what rematerialisation saves, without jaxssl: the
temporaries of the gradient of a 24-layer chain of 512-wide matmuls (4 tanh layers per checkpointed block) at
batch 4096, with and without ``jax.checkpoint`` per block.

    python benchmarks/speed/remat_on_cpu.py

On a GPU or TPU the checkpointed chain needs far fewer temporaries (one block's activations plus the block
inputs); where it does not, the backend's buffer assignment does not exploit remat, and jaxssl's memory tables
cannot show ``model.remat``'s effect there either.
"""

import jax
import jax.numpy as jnp


def block(w, x):
  for _ in range(4):
    x = jnp.tanh(x @ w)
  return x


def temporaries_mib(remat: bool) -> float:
  layer = jax.checkpoint(block) if remat else block

  def loss(ws, x):
    for w in ws:
      x = layer(w, x)
    return jnp.sum(x)

  ws = [jax.ShapeDtypeStruct((512, 512), jnp.float32)] * 24
  x = jax.ShapeDtypeStruct((4096, 512), jnp.float32)
  compiled = jax.jit(jax.grad(loss)).lower(ws, x).compile()
  return compiled.memory_analysis().temp_size_in_bytes / 2**20


if __name__ == "__main__":
  print(f"{jax.devices()[0].platform}, jax {jax.__version__}")
  print("| jax.checkpoint per block | temporaries (MiB) |\n|---|---|")
  for remat in (False, True):
    print(f"| {remat} | {temporaries_mib(remat):,.0f} |")
