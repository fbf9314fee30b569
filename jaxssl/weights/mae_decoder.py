"""MAE's decoder from the official checkpoint (``models_mae.py``: ``decoder_embed``, ``mask_token``,
``decoder_blocks.N``, ``decoder_norm``, ``decoder_pred``, and the fixed ``decoder_pos_embed``) to the parameters of
jaxssl's ``MaskedAutoencoder``, so that MAE pretraining continues from where the official run stopped
(``--config.model.init_from=checkpoint-799.pth`` with ``configs/mae*.py``).

The decoder's heads are not in its shapes: they come from the config (``method.decoder_heads``; 16 in every
released MAE). Its position table is MAE's fixed sine-cosine one, which jaxssl's decoder computes itself: the
file's is checked against it, not read.
"""

from __future__ import annotations

import numpy as np

from jaxssl.weights.files import Taker, WeightsError


def fields(decoder: dict[str, np.ndarray]) -> dict[str, int]:
  """``method.decoder_dim`` and ``decoder_depth`` of an official decoder's tensors."""
  depth = 1 + max((int(k.split(".")[1]) for k in decoder if k.startswith("decoder_blocks.")), default=-1)
  return {"decoder_dim": int(decoder["decoder_embed.weight"].shape[0]), "decoder_depth": depth}


def to_jaxssl(decoder: dict[str, np.ndarray], where: str, channels: int, patch_size: int) -> tuple[dict, str]:
  """(the decoder's jaxssl parameters, a note: what was fitted). ``channels`` and ``patch_size``: the run's; a
  decoder that predicts 3-channel patches predicts a 1-channel run's as the mean of its three channels'
  predictions."""
  from jaxssl.models.vit import sincos_pos_embed_2d
  from jaxssl.weights.timm_vit import block_params

  take = Taker(decoder, where)
  dense = lambda name: {"kernel": take(f"{name}.weight").T, "bias": take(f"{name}.bias")}   # noqa: E731
  width = fields(decoder)
  params = {"decoder_embed": dense("decoder_embed"), "mask_token": take("mask_token"),
            "decoder_norm": {"scale": take("decoder_norm.weight"), "bias": take("decoder_norm.bias")},
            "decoder_pred": dense("decoder_pred")}
  for i in range(width["decoder_depth"]):
    params[f"decoder_block_{i}"] = block_params(take, f"decoder_blocks.{i}")
  if "decoder_pos_embed" in decoder:
    table = take("decoder_pos_embed")[0]
    grid = round((table.shape[0] - 1) ** 0.5)
    fixed = sincos_pos_embed_2d(table.shape[-1], (grid, grid), cls_token=True)
    if table.shape != fixed.shape or not np.allclose(table, fixed, atol=1e-5):
      raise WeightsError(f"{where}: its decoder_pos_embed is not MAE's fixed sine-cosine table, which jaxssl's "
                         "decoder uses")
  take.refuse_left("MAE decoder")
  note = ""
  pred = params["decoder_pred"]
  outputs, area = pred["kernel"].shape[1], patch_size * patch_size
  if outputs % area:
    raise WeightsError(f"{where}: decoder_pred has {outputs} outputs, which are no whole number of channels of "
                       f"{patch_size}x{patch_size} patches (model.patch_size={patch_size})")
  source_channels = outputs // area
  if source_channels != channels:
    if channels != 1 or source_channels != 3:
      raise WeightsError(f"{where}: its decoder predicts {source_channels}-channel patches and these images have "
                         f"{channels}")
    # Rows are (row in patch, column in patch, channel): the channels are the last, fastest axis.
    kernel = pred["kernel"].reshape(pred["kernel"].shape[0], -1, source_channels).mean(-1)
    params["decoder_pred"] = {"kernel": kernel, "bias": pred["bias"].reshape(-1, source_channels).mean(-1)}
    note = f"its decoder's predictions of {source_channels} channels averaged into 1"
  return params, note

