"""FSDP's gather one transformer block at a time (ZeRO-3; Rajbhandari et al. 2020, section 5): in the model an
FSDP step runs (built with ``gather_axis``, a field of the ViT, MAE's decoder and I-JEPA's predictor), each ViT
block (``models.vit.block_class``) receives its parameters as this device's shards and gathers them
(``all_gather``) over that mesh axis on entry, inside a rematerialised region. The
gathered copy then lives for one block in the forward pass and is gathered again for the same block in the
backward pass, where the transpose of the gather reduce-scatters (``psum_scatter``) that block's gradients: a
device never holds more than one block's whole parameters and gradients at once, instead of the whole tree
(``jaxssl.engine.fsdp`` gathers what is outside the blocks on entry to the step, as before).

Every other model (``gather_axis=None``) builds the plain ``Block``; nothing here is read at trace time but the
model's own fields.
"""

from __future__ import annotations

import re
from typing import Any

import jax
from jax.ad_checkpoint import checkpoint_name

# The name of a gathered parameter (for a rematerialisation policy that names it, and in jaxprs).
GATHERED = "fsdp_gathered"

# Modules whose parameters the model gathers itself: the unrolled blocks (block_3, decoder_block_0,
# predictor_block_1: models.vit.block_class builds every one) and the scanned ones (blocks/block).
_BLOCK = re.compile(r"(^|_)block_\d+$")

def in_block(path: tuple[str, ...], split_dim: int | None) -> bool:
  """Whether the parameter at ``path`` (dict keys) is gathered by its block rather than on entry to the step:
  it is split (``split_dim`` is not None) and belongs to an unrolled block, or to the scanned stack along a
  dimension other than the stacking one (a shard of the depth axis could not be scanned over)."""
  if split_dim is None:
    return False
  if any(_BLOCK.search(key) for key in path):
    return True
  return any(a == "blocks" and b == "block" for a, b in zip(path, path[1:])) and split_dim != 0


def gather_to_shapes(tree: Any, full_shapes: Any, axis_name: str) -> Any:
  """Inside shard_map: each leaf of ``tree`` whose shape differs from its whole shape (``full_shapes``, a tree
  of ShapeDtypeStructs) in one dimension is a shard along it and is all-gathered along it; whole leaves pass
  as they are. The gathered leaves are named ``GATHERED`` for the rematerialisation policy."""
  def one(leaf, full):
    dims = [i for i, (have, whole) in enumerate(zip(leaf.shape, full.shape)) if have != whole]
    if not dims:
      return leaf
    if len(dims) != 1:
      raise ValueError(f"a block parameter of shape {leaf.shape} is not a shard of one of shape {full.shape}")
    return checkpoint_name(jax.lax.all_gather(leaf, axis_name, axis=dims[0], tiled=True), GATHERED)
  return jax.tree.map(one, tree, full_shapes)


def recompute_gathered() -> Any:
  """The rematerialisation policy of a block that does not remat itself: the outputs of its matrix products
  over tokens are saved for the backward pass, and everything else is recomputed: the gathered parameters
  (gathered again), the casts and reshapes of them autodiff would otherwise keep instead (a policy that saved
  all but the gathered arrays would keep those whole copies), norms, GELU and the attention scores (a few per
  cent of a block's FLOPs at ViT widths)."""
  return jax.checkpoint_policies.dots_with_no_batch_dims_saveable
