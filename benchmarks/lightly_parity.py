"""lightly's side of benchmarks/step_parity_vs_lightly.py: the method of benchmarks/lightly_train.py (its Model,
LARS, schedules) started from jaxssl's initial weights and trained on jaxssl's views. Never imported by jaxssl.

    .venv-lightly/bin/python benchmarks/lightly_parity.py IN.npz OUT.npz

IN.npz: the recipe (JSON, key "recipe"), the views [steps, views, B, H, W, C] uint8, and jaxssl's initial
parameters and BatchNorm statistics under "params/..." and "batch_stats/..." (Flax paths joined by "/").
OUT.npz: the loss of every step, and the online parameters after the last step under jaxssl's names.
"""

import json
import sys

import numpy as np
import torch
from torch import nn

import lightly_train


def jaxssl_names(model: lightly_train.Model) -> list[tuple[torch.Tensor, str, str]]:
  """(tensor, jaxssl path, layout) for every online parameter and BatchNorm statistic of the model, in jaxssl's
  Flax names; layout "conv" (OIHW <-> HWIO), "dense" (transposed) or "" (as is)."""
  out = []

  def conv(module: nn.Conv2d, name: str) -> None:
    out.append((module.weight, f"params/{name}/kernel", "conv"))

  def norm(module: nn.modules.batchnorm._BatchNorm, name: str) -> None:
    out.extend([(module.weight, f"params/{name}/scale", ""), (module.bias, f"params/{name}/bias", ""),
                (module.running_mean, f"batch_stats/{name}/mean", ""),
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


def main(path_in: str, path_out: str) -> None:
  given = np.load(path_in)
  recipe = json.loads(str(given["recipe"]))
  torch.manual_seed(0)
  model = lightly_train.Model(recipe)
  names = jaxssl_names(model)
  with torch.no_grad():
    for tensor, name, layout in names:
      tensor.copy_(torch.from_numpy(np.ascontiguousarray(to_torch(given[name], layout))))
    if model.name == "byol":
      model.backbone_target.load_state_dict(model.backbone.state_dict())
      model.projection_target.load_state_dict(model.projection.state_dict())
  optimizer = lightly_train.make_optimizer(model, recipe["optim"])
  mean = torch.tensor(recipe["mean"]).view(1, -1, 1, 1)
  std = torch.tensor(recipe["std"]).view(1, -1, 1, 1)
  views = given["views"]
  model.train()
  losses = []
  for step in range(len(views)):
    x = [(torch.from_numpy(v).permute(0, 3, 1, 2).float() / 255.0 - mean) / std for v in views[step]]
    losses.append(lightly_train.train_step(model, optimizer, x, step, recipe).item())
  np.savez(path_out, losses=np.array(losses), **{name: to_jaxssl(t, layout) for t, name, layout in names})


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
