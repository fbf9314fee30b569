"""A run's encoder started from imported weights (``config.model.init_from``): a pretraining run (its EMA
target, where the method keeps one, starts from them too) or a fine-tuning (``python -m jaxssl.finetune
--pretrained WEIGHTS``).

The config names the architecture (``model.encoder``, ``patch_size``, ``class_token``, ``num_registers``,
``layer_scale``, ``mlp``, ``qkv_bias``; a ResNet's ``stem`` and ``padding``) and ``architecture`` says what the
weights need, so that a config that differs is one line naming the field before anything is written. The
weights are then fitted to the run: position embeddings resized to its patch grid and the first convolution to
its images' channels (``jaxssl.weights.adapt``, as timm does both); its own fixed sine-cosine positions, if it
has them, are kept.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jaxssl.weights import adapt, mae_decoder
from jaxssl.weights.files import WeightsError


def _read(config) -> tuple[Any, dict, dict[str, np.ndarray]]:
  """(module, variables) of the encoder in ``model.init_from`` and, for MAE, the official checkpoint's decoder
  tensors (empty where it has none), from one read of the file."""
  from jaxssl import weights
  from jaxssl.weights import files, official

  m = config.model
  contents, folder_config = files.read(m.init_from)
  module, variables = weights.from_contents(contents, folder_config, m.init_from, arch=m.init_from_arch or None,
                                            default_heads=config_heads(config))
  wants_decoder = "decoder_dim" in config.method and isinstance(contents, dict)
  return module, variables, official.mae_decoder(contents, m.init_from) if wants_decoder else {}


def config_heads(config) -> int | None:
  """The attention heads of the config's ViT (``model.encoder``), for weights that do not say theirs."""
  from jaxssl.models import VITS

  encoder = VITS.get(config.model.encoder)
  return encoder.keywords["num_heads"] if encoder is not None else None


def architecture(source: str, arch: str = "", default_heads: int | None = None) -> dict[str, Any]:
  """The ``config.model`` fields of the encoder in ``source`` (raises WeightsError where jaxssl names no such
  encoder); ``default_heads``: the heads where the weights do not say theirs."""
  from jaxssl import weights

  return _fields(weights.load(source, arch=arch or None, default_heads=default_heads)[0], source)


def _fields(module, source: str) -> dict[str, Any]:
  from jaxssl.models import VITS, swiglu_mlp_ratio
  from jaxssl.models.resnet import ResNet

  if isinstance(module, ResNet):
    layouts = {("BottleneckBlock", (3, 4, 6, 3)): "resnet50", ("BasicBlock", (2, 2, 2, 2)): "resnet18"}
    name = layouts.get((module.block.__name__, tuple(module.stage_sizes)))
    if name is None or tuple(module.widths) != (64, 128, 256, 512):
      raise WeightsError(f"{source}: a ResNet of {tuple(module.stage_sizes)} {module.block.__name__}s and widths "
                         f"{tuple(module.widths)}; jaxssl's encoders are ResNet-18 and ResNet-50")
    return {"encoder": name, "stem": "imagenet", "padding": "torch"}
  sizes = {(v.keywords["dim"], v.keywords["depth"], v.keywords["num_heads"]): k for k, v in VITS.items()}
  name = sizes.get((module.dim, module.depth, module.num_heads))
  ratio = swiglu_mlp_ratio(module.dim) if module.mlp == "swiglu" else 4.0
  if name is None or abs(module.mlp_ratio - ratio) > 1e-6:
    known = ", ".join(f"{k} ({d} wide, {depth} deep, {h} heads)" for (d, depth, h), k in sizes.items())
    raise WeightsError(f"{source}: a ViT {module.dim} wide, {module.depth} deep with {module.num_heads} heads and an "
                       f"MLP ratio of {module.mlp_ratio:g}; jaxssl's ViTs are {known} with ratio 4 (SwiGLU: "
                       "DINOv2's width)")
  return {"encoder": name, "patch_size": module.patch_size, "class_token": module.class_token,
          "num_registers": module.num_registers, "layer_scale": 1e-5 if module.layer_scale else 0.0,
          "mlp": module.mlp, "qkv_bias": module.qkv_bias}


def check(config) -> None:
  """Raises ConfigError naming the first ``config.model`` field that differs from the weights' architecture (or,
  continuing MAE, the ``method.decoder_*`` field that differs from the file's decoder; or the weights' one line
  where they cannot be read)."""
  from jaxssl.common.config_checks import fail

  m = config.model
  module, _, decoder = _read(config)
  for field, value in _fields(module, m.init_from).items():
    mine = m[field]
    # LayerScale's value is only its start: the weights bring their own; whether there is one must agree.
    if (bool(mine) != bool(value)) if field == "layer_scale" else (mine != value):
      fail(f"model.{field}", mine, f"the weights in model.init_from={m.init_from!r} have {value!r}: set it (python "
           "-m jaxssl.finetune --pretrained WEIGHTS sets them all)")
  for field, value in (mae_decoder.fields(decoder) if decoder else {}).items():
    if config.method[field] != value:
      fail(f"method.{field}", config.method[field], f"the MAE decoder in model.init_from={m.init_from!r} has "
           f"{value}: set it, or start from the encoder alone (python -m jaxssl.export it to timm first)")


def starter(config, channels: int) -> Callable:
  """Variables -> the same with the encoder's parameters and BatchNorm statistics from ``model.init_from``,
  fitted to the run (the trainer's warm start of a new run, ``jaxssl.train.start_from``)."""
  from jaxssl.methods.base import Variables
  from jaxssl.runs.encoder_start import as_fresh, fit_layout, with_encoder

  source = config.model.init_from

  def start(variables: Variables) -> Variables:
    module, imported, decoder_tensors = _read(config)
    fresh_params = variables.params["encoder"]
    params = dict(imported["params"])
    notes = []
    if "pos_embed" in params:
      if "pos_embed" not in fresh_params:
        del params["pos_embed"]
        notes.append("its position embeddings left out (model.pos_embed='sincos' keeps its own)")
      else:
        params["pos_embed"], note = _fit_positions(params["pos_embed"], fresh_params["pos_embed"].shape, module)
        notes += [note] if note else []
    first = "patch_embed" if "patch_embed" in params else "stem_conv"
    kernel = np.asarray(params[first]["kernel"])
    if kernel.shape[-2] != channels:
      params[first] = {**params[first], "kernel": adapt.adapt_channels(kernel, channels)}
      notes.append(f"its first convolution fitted from {kernel.shape[-2]} channels to {channels}")
    params, fitted = fit_layout(params, fresh_params)       # MAE's fine-tuning pool too (main_finetune.py)
    notes += fitted
    started = with_encoder(variables, params, imported.get("batch_stats", {}), f"config.model.init_from={source!r}",
                           error=WeightsError)
    what = "encoder"
    if "decoder_embed" in variables.params:                  # MAE: its decoder too, where the file has one
      decoder, note = _decoder(decoder_tensors, source, channels, config.model.patch_size, variables.params)
      notes += [note] if note else []
      if decoder:
        started = Variables({**started.params, **as_fresh({k: variables.params[k] for k in decoder}, decoder)},
                            started.batch_stats)
        what = "encoder and MAE decoder"
      else:
        notes.append("no MAE decoder in it: the decoder starts new")
    print(f"init_from: {what} from {source}" + (f" ({'; '.join(notes)})" if notes else ""), flush=True)
    return started

  return start


def _decoder(tensors: dict, source: str, channels: int, patch_size: int, fresh: dict) -> tuple[dict, str]:
  """(MAE's decoder parameters from the official checkpoint's ``tensors``, fitted to the run, or {}; a note)."""
  from jaxssl.runs.checkpoint import first_difference, shapes_by_path

  if not tensors:
    return {}, ""
  params, note = mae_decoder.to_jaxssl(tensors, source, channels, patch_size)
  difference = first_difference(shapes_by_path(params), shapes_by_path({k: fresh[k] for k in fresh if k != "encoder"}))
  if difference:
    raise WeightsError(f"config.model.init_from={source!r}: its MAE decoder does not fit this config's "
                       f"(method.decoder_*, model.patch_size: {difference})")
  return params, note


def _fit_positions(pos: np.ndarray, shape: tuple, module) -> tuple[np.ndarray, str]:
  """The imported [1, (1 +) G0 * G0, D] position table resized to ``shape`` (the run's grid)."""
  first = int(module.class_token)
  rows = shape[1] - first
  grid = int(round(rows ** 0.5))
  if pos.shape[1] == shape[1]:
    return pos, ""
  patch = adapt.resize_positions(pos[0, first:], grid, antialias=True)       # as timm resizes a timm model's
  source = int(round((pos.shape[1] - first) ** 0.5))
  return (np.concatenate([pos[0, :first], patch])[None],
          f"its position embeddings resized from a {source}x{source} grid to {grid}x{grid}")
