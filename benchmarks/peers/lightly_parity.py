"""lightly's side of benchmarks/parity/step_parity_vs_lightly.py: the method of
benchmarks/peers/lightly_train.py (its Model, LARS, schedules) started from jaxssl's initial weights and trained on jaxssl's views. Never imported by jaxssl.

    .venv-lightly/bin/python benchmarks/peers/lightly_parity.py IN.npz OUT.npz

IN.npz: the recipe (JSON, key "recipe"), the views [steps, views, B, H, W, C] uint8, and jaxssl's initial
parameters and BatchNorm statistics under "params/..." and "batch_stats/..." (Flax paths joined by "/").
OUT.npz: the loss of every step, and the online parameters after the last step under jaxssl's names.
"""

import json
import sys

import numpy as np
import torch

import lightly_train
import lightly_weights


def main(path_in: str, path_out: str) -> None:
  given = np.load(path_in)
  recipe = json.loads(str(given["recipe"]))
  torch.manual_seed(0)
  model = lightly_train.Model(recipe)
  lightly_weights.load(model, given)
  optimizer = lightly_train.make_optimizer(model, recipe["optim"])
  mean = torch.tensor(recipe["mean"]).view(1, -1, 1, 1)
  std = torch.tensor(recipe["std"]).view(1, -1, 1, 1)
  views = given["views"]
  model.train()
  losses = []
  for step in range(len(views)):
    x = [(torch.from_numpy(v).permute(0, 3, 1, 2).float() / 255.0 - mean) / std for v in views[step]]
    losses.append(lightly_train.train_step(model, optimizer, x, step, recipe).item())
  np.savez(path_out, losses=np.array(losses),
           **{name: lightly_weights.to_jaxssl(t, layout) for t, name, layout in lightly_weights.jaxssl_names(model)})


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2])
