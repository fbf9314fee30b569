"""ResNets in torchvision's names (``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``downsample.0`` / ``.1``, the
names timm's ResNets, lightly, solo-learn and the official SimCLR / BYOL / MoCo conversions use) to jaxssl's
ResNet and back.

jaxssl's ResNet computes torchvision's features with ``padding="torch"`` (its 3x3 convolutions padded 1 on every
side) and the ImageNet stem; BatchNorm's running statistics become ``batch_stats``. A ResNet trained with
Flax's ``SAME`` padding (jaxssl's default) or the CIFAR stem has no torchvision counterpart, and export says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxssl.weights.files import Taker, WeightsError


def is_resnet(tensors: dict[str, Any]) -> bool:
  return "conv1.weight" in tensors and "layer1.0.conv1.weight" in tensors


def spec(tensors: dict[str, np.ndarray], where: str) -> dict[str, Any]:
  """The jaxssl ResNet's fields (and the input channels) of a torchvision-named state dict."""
  from jaxssl.models.resnet import BasicBlock, BottleneckBlock

  bottleneck = "layer1.0.conv3.weight" in tensors
  stage_sizes, widths = [], []
  for stage in range(1, 5):
    blocks = {int(k.split(".")[1]) for k in tensors if k.startswith(f"layer{stage}.")}
    if not blocks:
      raise WeightsError(f"{where}: no layer{stage}.*: jaxssl's ResNets have four stages")
    stage_sizes.append(max(blocks) + 1)
    widths.append(int(tensors[f"layer{stage}.0.conv1.weight"].shape[0]))
  stem = tensors["conv1.weight"]
  if stem.shape[2:] != (7, 7):
    raise WeightsError(f"{where}: conv1.weight is {stem.shape[2]}x{stem.shape[3]}; torchvision's stem is 7x7")
  return {"stage_sizes": tuple(stage_sizes), "block": BottleneckBlock if bottleneck else BasicBlock,
          "widths": tuple(widths), "stem": "imagenet", "padding": "torch", "stem_width": int(stem.shape[0]),
          "channels": int(stem.shape[1])}


def _block_layers(bottleneck: bool) -> list[tuple[str, str, str]]:
  """(torchvision conv, torchvision bn, jaxssl suffix) of a block's layers, in jaxssl's creation order."""
  count = 3 if bottleneck else 2
  return [(f"conv{i + 1}", f"bn{i + 1}", str(i)) for i in range(count)]


def to_jaxssl(tensors: dict[str, np.ndarray], s: dict[str, Any], where: str) -> tuple[dict, dict]:
  """(params, batch_stats) of jaxssl's ResNet from a torchvision state dict; ``fc.*`` (a classifier) is left out."""
  take = Taker(tensors, where)
  conv = lambda name: {"kernel": take(f"{name}.weight").transpose(2, 3, 1, 0)}          # noqa: E731
  norm = lambda name: ({"scale": take(f"{name}.weight"), "bias": take(f"{name}.bias")},  # noqa: E731
                       {"mean": take(f"{name}.running_mean"), "var": take(f"{name}.running_var")})
  params, stats = {"stem_conv": conv("conv1")}, {}
  params["stem_norm"], stats["stem_norm"] = norm("bn1")
  bottleneck = s["block"].__name__ == "BottleneckBlock"
  count = 0
  for stage, blocks in enumerate(s["stage_sizes"], start=1):
    for index in range(blocks):
      prefix, name = f"layer{stage}.{index}", f"{s['block'].__name__}_{count}"
      block_params, block_stats = {}, {}
      for tv_conv, tv_bn, suffix in _block_layers(bottleneck):
        block_params[f"Conv_{suffix}"] = conv(f"{prefix}.{tv_conv}")
        block_params[f"BatchNorm_{suffix}"], block_stats[f"BatchNorm_{suffix}"] = norm(f"{prefix}.{tv_bn}")
      if f"{prefix}.downsample.0.weight" in tensors:
        block_params["shortcut_conv"] = conv(f"{prefix}.downsample.0")
        block_params["shortcut_norm"], block_stats["shortcut_norm"] = norm(f"{prefix}.downsample.1")
      params[name], stats[name] = block_params, block_stats
      count += 1
  take.refuse_left("ResNet", ignored=lambda name: name.startswith("fc.") or name.endswith("num_batches_tracked"))
  return params, stats


def from_jaxssl(params: dict, stats: dict, module) -> dict[str, np.ndarray]:
  """The torchvision-named state dict of a jaxssl ResNet (``module``); refused (one line) where torchvision's
  ResNet computes something else: the CIFAR stem, or Flax's SAME padding."""
  if module.stem != "imagenet":
    raise WeightsError(f"a ResNet with the {module.stem!r} stem (a 3x3 convolution, no max-pool) has no torchvision "
                       "counterpart, whose stem is 7x7 with a max-pool: not exported")
  if module.padding != "torch":
    raise WeightsError("a ResNet trained with Flax's SAME padding (model.padding='same') computes other features in "
                       "torchvision, which pads its stride-2 3x3 convolutions by 1 on each side: not exported "
                       "(train with --config.model.padding=torch to export)")
  a = lambda x: np.asarray(x, np.float32)                    # noqa: E731
  out = {}

  def put_conv(name, layer):
    out[f"{name}.weight"] = a(layer["kernel"]).transpose(3, 2, 0, 1)

  def put_norm(name, p, st):
    out[f"{name}.weight"], out[f"{name}.bias"] = a(p["scale"]), a(p["bias"])
    out[f"{name}.running_mean"], out[f"{name}.running_var"] = a(st["mean"]), a(st["var"])
    out[f"{name}.num_batches_tracked"] = np.zeros((), np.int64)

  put_conv("conv1", params["stem_conv"])
  put_norm("bn1", params["stem_norm"], stats["stem_norm"])
  bottleneck = module.block.__name__ == "BottleneckBlock"
  count = 0
  for stage, blocks in enumerate(module.stage_sizes, start=1):
    for index in range(blocks):
      prefix, name = f"layer{stage}.{index}", f"{module.block.__name__}_{count}"
      p, st = params[name], stats[name]
      for tv_conv, tv_bn, suffix in _block_layers(bottleneck):
        put_conv(f"{prefix}.{tv_conv}", p[f"Conv_{suffix}"])
        put_norm(f"{prefix}.{tv_bn}", p[f"BatchNorm_{suffix}"], st[f"BatchNorm_{suffix}"])
      if "shortcut_conv" in p:
        put_conv(f"{prefix}.downsample.0", p["shortcut_conv"])
        put_norm(f"{prefix}.downsample.1", p["shortcut_norm"], st["shortcut_norm"])
      count += 1
  return out


def export_config(module, channels: int) -> dict:
  """timm's hub config.json for ``from_jaxssl``'s state dict (timm's ResNets use torchvision's names)."""
  bottleneck = module.block.__name__ == "BottleneckBlock"
  architecture = "resnet50" if bottleneck else "resnet18"
  args = {"layers": list(module.stage_sizes), "channels": list(module.widths), "in_chans": channels,
          "num_classes": 0, "global_pool": "avg"}
  if (module.stem_width or module.widths[0]) != 64:
    raise WeightsError(f"a ResNet whose stem has {module.stem_width or module.widths[0]} channels: timm's ResNet "
                       "has 64 there; not exported")
  return {"architecture": architecture, "num_classes": 0, "num_features": module.widths[-1] * (4 if bottleneck else 1),
          "global_pool": "avg", "model_args": args,
          "pretrained_cfg": {"input_size": [channels, 224, 224], "num_classes": 0, "first_conv": "conv1",
                             "classifier": "fc"}}
