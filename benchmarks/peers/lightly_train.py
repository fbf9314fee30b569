"""Pretrains lightly (PyTorch) on a jaxssl config's recipe, for benchmarks/accuracy/accuracy_vs_lightly.py. Never
imported by jaxssl.

Runs in the benchmark environment that has PyTorch and lightly (``pip install torch==2.14.1 torchvision==0.29.1
lightly``); accuracy_vs_lightly.py writes the recipe (a JSON file read from jaxssl's config: heads, loss,
optimizer, schedules, view recipes, batch, steps, seed) and the images (an .npz), starts this script, and
scores the features it writes with jaxssl's kNN and linear probe.

    .venv-lightly/bin/python benchmarks/peers/lightly_train.py RECIPE.json

What is the same as jaxssl, from the recipe:
- the small ResNet of benchmarks/peers/lightly_step.py (torchvision's convolution init, kaiming normal fan-out, as
  jaxssl's ResNets), and lightly's heads at the config's widths (Linear without bias before BatchNorm);
- the losses: lightly's NTXentLoss, VICRegLoss, BarlowTwinsLoss (the config's lambda), SimSiam's
  NegativeCosineSimilarity, and BYOL's written as jaxssl's 2 - 2 cos summed over the two directions (the same
  gradient scale, which matters for the BatchNorm and bias parameters that LARS does not rescale); NNCLR with
  lightly's NNMemoryBankModule as the support set (the config's size, random unit rows at the start, as
  jaxssl's) and its loss written as jaxssl's (solo-learn's one-directional form, not lightly's NTXentLoss); MoCo
  v3 with BYOL's momentum target and the official InfoNCE (2T-scaled cross-entropy) written as jaxssl's, its
  heads built from lightly's ProjectionHead (lightly has none for v3); MoCo v2 as lightly's own (its
  MoCoProjectionHead, NTXentLoss with a memory bank of the config's size, the key from the momentum copy);
  LeJEPA with lightly's SIGReg and lejepa_invariance_loss (its own directions each step);
- lightly's LARS with two parameter groups: weights (ndim > 1) with weight decay and the trust ratio, the rest
  without either (lightly's LARS skips the trust ratio where weight decay is 0), as jaxssl's masks; or, for a
  config with optim.name=sgd (SimSiam's, MoCo v2's), torch's SGD with momentum and the same two groups, or with
  adamw (LeJEPA's) torch's AdamW;
- the learning rate of every step and the momentum target's tau (BYOL, MoCo v3; the target updated after each
  optimizer step), as lists in the recipe computed by jaxssl's own schedules (linear warm-up from 0 and cosine
  to 0; tau from base to 1);
- each view: RandomResizedCrop (scale, ratio), horizontal flip, colour jitter with probability, grayscale,
  Gaussian blur (kernel 10% of the side, at least 3, reflect padding: torchvision's GaussianBlur), lightly's
  RandomSolarization, then Normalize with the config's mean and std; the batch's views in separate BatchNorm
  passes (one forward per view), as jaxssl;
- batch, number of steps (epochs of the train split, continuing across epoch boundaries), seed 0.

What differs: NNCLR's projection head (lightly's) ends in a BatchNorm with scale and shift, jaxssl's (as MoCo
v3's) without; PyTorch's default init for the heads' Linear layers (Kaiming uniform, a = sqrt(5)) against
Flax's LeCun normal; the data order and augmentation draws (torch's generators, not jaxssl's keys).
With ``view_files`` in the recipe (accuracy_vs_lightly.py --lightly_on_jaxssl_views), lightly trains on
views made by jaxssl's augmentation instead of its transforms, to tell the augmentation from the rest; with
``init_weights`` (--lightly_from_jaxssl_init), it starts from jaxssl's initial weights instead of torch's draw.
Writes the features of the encoder after training and at initialisation (only the latter when total_steps is 0,
accuracy_vs_lightly.py --init_seeds). Prints one JSON line: train_seconds (the training loop), first and final
loss, steps.
"""

import json
import os
import sys
import time

import numpy as np
import torch
import torchvision.transforms as T
from lightly.loss import BarlowTwinsLoss, NegativeCosineSimilarity, NTXentLoss, VICRegLoss
from lightly.loss.lejepa_loss import SIGReg, lejepa_invariance_loss
from lightly.models.modules import NNMemoryBankModule, heads
from lightly.models.utils import deactivate_requires_grad
from lightly.transforms import RandomSolarization
from lightly.utils.lars import LARS
from PIL import Image
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lightly_weights  # noqa: E402
from lightly_step import small_resnet  # noqa: E402


def init_like_torchvision(model: nn.Module) -> None:
  """torchvision's ResNet init: Kaiming normal (fan-out) convolutions, BatchNorm scale 1 and shift 0."""
  for module in model.modules():
    if isinstance(module, nn.Conv2d):
      nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(module, nn.BatchNorm2d):
      nn.init.ones_(module.weight)
      nn.init.zeros_(module.bias)


def view_transform(view: dict, mean, std) -> T.Compose:
  """One jaxssl ViewRecipe (its fields as a dict) as torchvision / lightly transforms on a PIL image."""
  ops = [T.RandomResizedCrop(view["size"], scale=tuple(view["crop_scale"]), ratio=tuple(view["crop_ratio"]),
                             antialias=True),
         T.RandomHorizontalFlip(view["flip_prob"])]
  if view["jitter_prob"] > 0:
    jitter = T.ColorJitter(view["brightness"], view["contrast"], view["saturation"], view["hue"])
    ops.append(T.RandomApply([jitter], p=view["jitter_prob"]))
  if view["grayscale_prob"] > 0:
    ops.append(T.RandomGrayscale(view["grayscale_prob"]))
  if view["blur_prob"] > 0:
    kernel = max(3, int(round(0.1 * view["size"])) | 1)
    ops.append(T.RandomApply([T.GaussianBlur(kernel, sigma=tuple(view["blur_sigma"]))], p=view["blur_prob"]))
  if view["solarize_prob"] > 0:
    ops.append(RandomSolarization(prob=view["solarize_prob"], threshold=128))
  ops += [T.ToTensor(), T.Normalize(mean, std)]
  return T.Compose(ops)


class Views(torch.utils.data.Dataset):

  def __init__(self, images: np.ndarray, transforms):
    self.images, self.transforms = images, transforms
    self.mode = "L" if images.shape[-1] == 1 else "RGB"

  def __len__(self):
    return len(self.images)

  def __getitem__(self, index):
    pixels = self.images[index]
    image = Image.fromarray(pixels[..., 0] if self.mode == "L" else pixels, self.mode)
    return tuple(t(image) for t in self.transforms)


def mlp(dims_in: int, hidden: list, out: int, kind: str) -> nn.Module:
  """lightly's projection head of the method at the config's widths (its layer count fixed where lightly's is)."""
  layers = len(hidden) + 1
  if kind in ("simclr", "lejepa"):
    # SimCLR v1's head, as jaxssl's (lightly's SimCLRProjectionHead adds a BatchNorm after the output layer: v2),
    # and LeJEPA's projector of MINIMAL.md (torchvision's MLP with BatchNorm), the same layers.
    blocks = [(d_in, d_out, nn.BatchNorm1d(d_out), nn.ReLU()) for d_in, d_out in zip([dims_in] + hidden, hidden)]
    return heads.ProjectionHead(blocks + [(hidden[-1], out, None, None)])
  if kind == "byol" and layers == 2:
    return heads.BYOLProjectionHead(dims_in, hidden[0], out)
  if kind == "vicreg":
    return heads.VICRegProjectionHead(dims_in, hidden[0], out, num_layers=layers)
  if kind == "barlow_twins" and layers == 3:
    return heads.BarlowTwinsProjectionHead(dims_in, hidden[0], out)
  if kind == "simsiam" and layers == 3:
    return heads.SimSiamProjectionHead(dims_in, hidden[0], out)
  if kind == "nnclr" and layers == 3 and hidden[0] == hidden[1]:
    return heads.NNCLRProjectionHead(dims_in, hidden[0], out)
  if kind == "mocov2" and layers == 2:
    return heads.MoCoProjectionHead(dims_in, hidden[0], out)
  if kind == "mocov3":
    # lightly has no MoCo v3 head: the official layout (as jaxssl's) from lightly's ProjectionHead, the output
    # BatchNorm without scale and shift.
    blocks = [(d_in, d_out, nn.BatchNorm1d(d_out), nn.ReLU()) for d_in, d_out in zip([dims_in] + hidden, hidden)]
    return heads.ProjectionHead(blocks + [(hidden[-1], out, nn.BatchNorm1d(out, affine=False), None)])
  raise ValueError(f"no lightly {kind} head with {layers} layers")


class Model(nn.Module):

  def __init__(self, recipe: dict):
    super().__init__()
    name, m = recipe["method"], recipe["method_config"]
    self.name = name
    self.backbone = small_resnet(recipe["channels"])
    init_like_torchvision(self.backbone)
    dim = 128
    if name == "simclr":
      self.projection = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], "simclr")
      self.criterion = NTXentLoss(temperature=m["temperature"])
    elif name in ("byol", "mocov3"):
      self.projection = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], name)
      # Linear, BatchNorm, ReLU, Linear: BYOL's predictor and MoCo v3's.
      self.prediction = heads.BYOLPredictionHead(m["proj_dim"], m["pred_hidden_dims"][0], m["proj_dim"])
      self.backbone_target = small_resnet(recipe["channels"])
      self.projection_target = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], name)
      self.copy_online_to_target()
      deactivate_requires_grad(self.backbone_target)
      deactivate_requires_grad(self.projection_target)
      self.criterion = NegativeCosineSimilarity()
      self.temperature = m.get("temperature")
    elif name == "mocov2":
      # lightly's MoCo v2: its head, a momentum copy, and NTXentLoss with a memory bank of keys (the queue).
      self.projection = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], "mocov2")
      self.backbone_target = small_resnet(recipe["channels"])
      self.projection_target = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], "mocov2")
      self.copy_online_to_target()
      deactivate_requires_grad(self.backbone_target)
      deactivate_requires_grad(self.projection_target)
      self.criterion = NTXentLoss(temperature=m["temperature"], memory_bank_size=(m["queue_size"], m["proj_dim"]))
    elif name == "lejepa":
      self.projection = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], "lejepa")
      self.sigreg = SIGReg(knots=m["knots"], t_max=m["t_max"], num_vectors=m["num_slices"])
      self.lam, self.num_global = m["lam"], m["num_global_views"]
    elif name == "vicreg":
      self.projection = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], "vicreg")
      self.criterion = VICRegLoss(lambda_param=m["sim_coeff"], mu_param=m["std_coeff"], nu_param=m["cov_coeff"])
    elif name == "barlow_twins":
      self.projection = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], "barlow_twins")
      self.criterion = BarlowTwinsLoss(lambda_param=m["lambd"])
    elif name == "nnclr":
      self.projection = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], "nnclr")
      self.prediction = heads.NNCLRPredictionHead(m["proj_dim"], m["pred_hidden_dims"][0], m["proj_dim"])
      self.support_set = NNMemoryBankModule(size=(m["queue_size"], m["proj_dim"]))
      self.temperature = m["temperature"]
    elif name == "simsiam":
      self.projection = mlp(dim, m["proj_hidden_dims"], m["proj_dim"], "simsiam")
      self.prediction = heads.SimSiamPredictionHead(m["proj_dim"], m["pred_hidden_dims"][0], m["proj_dim"])
      self.criterion = NegativeCosineSimilarity()
    else:
      raise ValueError(f"no lightly recipe for {name!r}")

  @property
  def has_target(self) -> bool:
    """A momentum target network (BYOL, MoCo v2, MoCo v3), updated by update_target after each step."""
    return hasattr(self, "backbone_target")

  @torch.no_grad()
  def copy_online_to_target(self) -> None:
    self.backbone_target.load_state_dict(self.backbone.state_dict())
    self.projection_target.load_state_dict(self.projection.state_dict())

  def online_parameters(self):
    return [p for n, p in self.named_parameters() if "_target" not in n]

  def loss(self, views):
    if self.name == "lejepa":
      # lightly's SIGReg and invariance term; its LeJEPALoss needs a local view, MINIMAL.md's recipe has none.
      proj = torch.stack([self.projection(self.backbone(x)) for x in views])
      invariance = lejepa_invariance_loss(all_proj=proj, global_proj=proj[:self.num_global])
      return self.lam * self.sigreg(proj) + (1.0 - self.lam) * invariance
    x0, x1 = views
    if self.name == "mocov2":
      query = self.projection(self.backbone(x0))
      with torch.no_grad():
        key = self.projection_target(self.backbone_target(x1))
      return self.criterion(query, key)
    if self.has_target:
      p0 = self.prediction(self.projection(self.backbone(x0)))
      p1 = self.prediction(self.projection(self.backbone(x1)))
      with torch.no_grad():
        z0 = self.projection_target(self.backbone_target(x0))
        z1 = self.projection_target(self.backbone_target(x1))
      if self.name == "mocov3":
        return self.info_nce(p0, z1) + self.info_nce(p1, z0)
      # jaxssl: (2 - 2 cos(p0, z1)) + (2 - 2 cos(p1, z0)); NegativeCosineSimilarity is -cos.
      return 4.0 + 2.0 * (self.criterion(p0, z1) + self.criterion(p1, z0))
    if self.name == "nnclr":
      z0, z1 = self.projection(self.backbone(x0)), self.projection(self.backbone(x1))
      # Both neighbours from the support set before this batch, then the first view's projections enqueued, as
      # jaxssl (lightly's bank returns the bank as it was before an update).
      nn1 = self.support_set(z1.detach(), update=False)
      nn0 = self.support_set(z0.detach(), update=True)
      return 0.5 * (self.nnclr_term(nn0, self.prediction(z1)) + self.nnclr_term(nn1, self.prediction(z0)))
    if self.name == "simsiam":
      z0, z1 = self.projection(self.backbone(x0)), self.projection(self.backbone(x1))
      p0, p1 = self.prediction(z0), self.prediction(z1)
      return 0.5 * (self.criterion(p0, z1.detach()) + self.criterion(p1, z0.detach()))
    return self.criterion(self.projection(self.backbone(x0)), self.projection(self.backbone(x1)))

  def info_nce(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """MoCo v3's contrastive term as the official code and jaxssl: 2T CE(q k^T / T, i), both normalised."""
    return 2.0 * self.temperature * self.match_keys(q, k)

  def nnclr_term(self, nn_: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """jaxssl's nnclr_loss (solo-learn's): cross-entropy of each neighbour against the batch's predictions, its
    own image's the positive. lightly's examples use NTXentLoss instead, which also contrasts the neighbours
    with each other (2N - 2 negatives, symmetric); the loss is written here as jaxssl's to compare the rest."""
    return self.match_keys(nn_, p)

  def match_keys(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """mean_i CE(q_i . K^T / T, i) on L2-normalised rows, query i's positive its own key (jaxssl's
    _match_global_keys on one device)."""
    logits = nn.functional.normalize(queries, dim=1) @ nn.functional.normalize(keys, dim=1).T / self.temperature
    return nn.functional.cross_entropy(logits, torch.arange(len(keys)))

  @torch.no_grad()
  def update_target(self, tau: float) -> None:
    """tau * target + (1 - tau) * online, for parameters and BatchNorm running statistics (as jaxssl's EMA)."""
    for online, target in ((self.backbone, self.backbone_target), (self.projection, self.projection_target)):
      for o, t in zip(online.state_dict().values(), target.state_dict().values()):
        if t.dtype.is_floating_point:
          t.mul_(tau).add_(o, alpha=1.0 - tau)


def make_optimizer(model: Model, o: dict) -> torch.optim.Optimizer:
  """lightly's LARS (or SGD) over the online parameters in jaxssl's two groups: weights (ndim > 1) decayed and
  trust-ratio scaled, the rest neither. The learning rate is set every step."""
  online = model.online_parameters()
  groups = [{"params": [p for p in online if p.ndim > 1], "weight_decay": o["weight_decay"]},
            {"params": [p for p in online if p.ndim <= 1], "weight_decay": 0.0}]
  if o["name"] == "lars":
    return LARS(groups, lr=0.0, momentum=o["momentum"], trust_coefficient=o["trust_coefficient"])
  if o["name"] == "adamw":                                         # LeJEPA's
    return torch.optim.AdamW(groups, lr=0.0, betas=(o["b1"], o["b2"]), eps=1e-8)
  return torch.optim.SGD(groups, lr=0.0, momentum=o["momentum"])   # jaxssl's sgd: same mask, then momentum


def train_step(model: Model, optimizer: torch.optim.Optimizer, views, step: int, recipe: dict) -> torch.Tensor:
  """One step of the recipe: the step's learning rate, the loss, the update, and the momentum target after it."""
  for group in optimizer.param_groups:
    group["lr"] = recipe["learning_rates"][step]
  loss = model.loss(views)
  optimizer.zero_grad(set_to_none=True)
  loss.backward()
  optimizer.step()
  if model.has_target:
    model.update_target(recipe["ema_taus"][step])
  return loss


@torch.no_grad()
def features(backbone: nn.Module, images: np.ndarray, mean, std, batch: int = 1000) -> np.ndarray:
  """The frozen encoder's features (BatchNorm in inference mode) of uint8 images [N, H, W, C]."""
  backbone.eval()
  mean_t = torch.tensor(mean).view(1, -1, 1, 1)
  std_t = torch.tensor(std).view(1, -1, 1, 1)
  out = []
  for start in range(0, len(images), batch):
    x = torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2).float() / 255.0
    out.append(backbone((x - mean_t) / std_t).numpy())
  return np.concatenate(out)


def main(path: str) -> None:
  with open(path) as f:
    recipe = json.load(f)
  torch.manual_seed(recipe["seed"])
  arrays = np.load(recipe["data"])
  mean, std = recipe["mean"], recipe["std"]
  model = Model(recipe)
  if recipe.get("init_weights"):       # jaxssl's initial draw instead of torch's (lightly_weights.load)
    with np.load(recipe["init_weights"]) as weights:
      lightly_weights.load(model, weights)
  optimizer = make_optimizer(model, recipe["optim"])
  if recipe.get("view_files"):         # views made by jaxssl's augmentation, one array per view: [steps, B, C, H, W]
    view_arrays = [np.load(p, mmap_mode="r") for p in recipe["view_files"]]
    loader = ([torch.from_numpy(np.asarray(v[s], np.float32)) for v in view_arrays]
              for s in range(len(view_arrays[0])))
  else:
    transforms = [view_transform(v, mean, std) for v in recipe["views"]]
    loader = torch.utils.data.DataLoader(
        Views(arrays["train_images"], transforms), batch_size=recipe["batch_size"], shuffle=True, drop_last=True,
        num_workers=recipe["workers"], persistent_workers=recipe["workers"] > 0,
        generator=torch.Generator().manual_seed(recipe["seed"]))
  total = recipe["total_steps"]
  init_features = {"init_train": features(model.backbone, arrays["eval_train_images"], mean, std),
                   "init_test": features(model.backbone, arrays["test_images"], mean, std)}
  model.train()
  losses, step, seconds = train_loop(loader, lambda views, step: train_step(model, optimizer, views, step, recipe),
                                     total, recipe["log_every"])
  write_features(recipe, model.backbone, arrays, init_features, total)
  print_timing(seconds, losses, step)


def train_loop(loader, step_fn, total: int, log_every: int) -> tuple[list[float], int, float]:
  """``step_fn(views, step) -> loss`` over the loader's batches (epoch after epoch) for ``total`` steps, the loss
  logged every ``log_every`` steps and at the last; returns (logged losses, steps run, seconds)."""
  losses, step = [], 0
  start = time.perf_counter()
  while step < total:
    for views in loader:
      loss = step_fn(views, step)
      if step % log_every == 0 or step == total - 1:
        losses.append(loss.item())
        print(f"step {step}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
              flush=True)
      step += 1
      if step == total:
        break
  return losses, step, time.perf_counter() - start


def write_features(recipe: dict, encoder: nn.Module, arrays, init_features: dict, total: int) -> None:
  """The trained encoder's features of the evaluation splits (none when nothing was trained) beside those at
  initialisation, to recipe["features"]."""
  mean, std = recipe["mean"], recipe["std"]
  trained = {} if total == 0 else {"train": features(encoder, arrays["eval_train_images"], mean, std),
                                   "test": features(encoder, arrays["test_images"], mean, std)}
  np.savez(recipe["features"], **trained, **init_features)


def print_timing(seconds: float, losses: list[float], steps: int) -> None:
  """The line accuracy_vs_lightly.py reads."""
  print(json.dumps({"train_seconds": seconds, "first_loss": losses[0] if losses else None,
                    "final_loss": losses[-1] if losses else None, "steps": steps,
                    "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)

if __name__ == "__main__":
  main(sys.argv[1])
