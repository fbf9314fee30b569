"""A loaded encoder put into a new run's fresh variables: its block layout and pooling fitted to the run's ViT,
its shapes checked path by path, and the arrays placed in the fresh trees' structure on the host. Shared by
the two warm starts: a pretrained jaxssl run (``pretrained_run``) and imported weights
(``jaxssl.weights.init_from``)."""

from __future__ import annotations

import jax
import numpy as np

from jaxssl.methods.base import Variables
from jaxssl.models.vit import for_global_pool, to_block_layout
from jaxssl.runs.checkpoint import CheckpointError, first_difference, shapes_by_path


def fit_layout(params: dict, fresh: dict) -> tuple[dict, list[str]]:
  """A ViT encoder's parameters in the fresh encoder's block layout (``model.scan_layers``) and pooling (MAE's
  ``model.pool="global"``: the final norm left out, ``fc_norm`` new), and notes saying what was done."""
  params, restacked = to_block_layout(params, fresh)
  params, fresh_fc_norm = for_global_pool(params, fresh)
  notes = [f"its blocks {'stacked for' if 'blocks' in params else 'unstacked from'} model.scan_layers"] * restacked
  return params, notes + ["its final norm left out, fc_norm new: model.pool='global'"] * fresh_fc_norm


def as_fresh(fresh, loaded):
  """``loaded``'s arrays on the host, in ``fresh``'s tree structure (whose shapes were compared first)."""
  return jax.tree.map(lambda _, x: np.asarray(x), fresh, loaded)


def with_encoder(variables: Variables, params: dict, stats: dict, where: str, hint: str = "",
                 error: type[CheckpointError] = CheckpointError) -> Variables:
  """``variables`` with the encoder's parameters and BatchNorm statistics replaced by ``params`` and ``stats``;
  ``error`` (one line: ``where``, the first path whose presence or shape differs, ``hint``) where they do not
  fit the fresh encoder."""
  for name, mine, theirs in (("parameters", variables.params["encoder"], params),
                             ("BatchNorm statistics", variables.batch_stats.get("encoder", {}), stats)):
    difference = first_difference(shapes_by_path(theirs), shapes_by_path(mine))
    if difference:
      raise error(f"{where}: its encoder's {name} do not fit this config's encoder ({difference}){hint}")
  new_stats = dict(variables.batch_stats)
  if stats:
    new_stats["encoder"] = as_fresh(variables.batch_stats["encoder"], stats)
  return Variables({**variables.params, "encoder": as_fresh(variables.params["encoder"], params)}, new_stats)
