"""jaxssl's weights in lightly's model (benchmarks/peers/lightly_train.py's Model): the name and layout map, both ways.
Never imported by jaxssl; runs in the PyTorch venv.

The map covers every online parameter and BatchNorm statistic: the small ResNet's convolutions and BatchNorms,
and the heads' Linear and BatchNorm1d layers, under jaxssl's Flax paths ("params/encoder/stem_conv/kernel",
"batch_stats/projector/BatchNorm_0/mean", ...). Used by benchmarks/peers/lightly_parity.py (the step from the same
weights) and lightly_train.py's ``init_weights`` (a whole run from jaxssl's initial draw).
"""

import numpy as np
import torch
from torch import nn


def jaxssl_names(model: nn.Module) -> list[tuple[torch.Tensor, str, str]]:
  """(tensor, jaxssl path, layout) for every online parameter and BatchNorm statistic of the model, in jaxssl's
  Flax names; layout "conv" (OIHW <-> HWIO), "dense" (transposed) or "" (as is)."""
  out = []

  def conv(module: nn.Conv2d, name: str) -> None:
    out.append((module.weight, f"params/{name}/kernel", "conv"))

  def norm(module: nn.modules.batchnorm._BatchNorm, name: str) -> None:
    if module.affine:                      # MoCo v3's output BatchNorm has no scale and shift (nor has jaxssl's)
      out.extend([(module.weight, f"params/{name}/scale", ""), (module.bias, f"params/{name}/bias", "")])
    out.extend([(module.running_mean, f"batch_stats/{name}/mean", ""),
                (module.running_var, f"batch_stats/{name}/var", "")])

  backbone = model.backbone
  conv(backbone[0], "encoder/stem_conv")
  norm(backbone[1], "encoder/stem_norm")
  blocks = [m for m in backbone if hasattr(m, "conv1")]
  for i, block in enumerate(blocks):
    prefix = f"encoder/BasicBlock_{i}/"
    conv(block.conv1, prefix + "Conv_0")
    norm(block.bn1, prefix + "BatchNorm_0")
    conv(block.conv2, prefix + "Conv_1")
    norm(block.bn2, prefix + "BatchNorm_1")
    if isinstance(block.shortcut, nn.Sequential):
      conv(block.shortcut[0], prefix + "shortcut_conv")
      norm(block.shortcut[1], prefix + "shortcut_norm")
  for attribute, name in (("projection", "projector"), ("prediction", "predictor")):
    head = getattr(model, attribute, None)
    if head is None:
      continue
    linears = [m for m in head.layers if isinstance(m, nn.Linear)]
    norms = [m for m in head.layers if isinstance(m, nn.BatchNorm1d)]
    for i, linear in enumerate(linears):
      out.append((linear.weight, f"params/{name}/Dense_{i}/kernel", "dense"))
      if linear.bias is not None:
        out.append((linear.bias, f"params/{name}/Dense_{i}/bias", ""))
    for i, module in enumerate(norms):
      norm(module, f"{name}/BatchNorm_{i}")
  return out


def to_torch(array: np.ndarray, layout: str) -> np.ndarray:
  return array.transpose(3, 2, 0, 1) if layout == "conv" else array.T if layout == "dense" else array


def to_jaxssl(tensor: torch.Tensor, layout: str) -> np.ndarray:
  array = tensor.detach().numpy()
  return array.transpose(2, 3, 1, 0) if layout == "conv" else array.T if layout == "dense" else array


@torch.no_grad()
def load(model: nn.Module, arrays) -> None:
  """Copies jaxssl's arrays (a mapping from the Flax paths above) into the model's online network, and into its
  momentum target if it has one (jaxssl's target starts as a copy of the online network too). A missing path is
  a KeyError."""
  for tensor, name, layout in jaxssl_names(model):
    tensor.copy_(torch.from_numpy(np.ascontiguousarray(to_torch(arrays[name], layout))))
  if model.has_target:
    model.copy_online_to_target()
