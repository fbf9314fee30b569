"""lightly's side of accuracy_vs_lightly.py for iBOT and I-JEPA: lightly's modules and losses, trained on the
recipe jaxssl's config describes.

    .venv-lightly/bin/python benchmarks/lightly_masked.py RECIPE.json     # written by accuracy_vs_lightly.py

- iBOT: a timm ``VisionTransformer`` in lightly's ``MaskedVisionTransformerTIMM`` (its mask token), lightly's
  ``DINOProjectionHead`` (one head for class and patch tokens when the recipe shares it), ``DINOLoss`` on the
  class tokens of every crop, ``IBOTPatchLoss`` on the masked patch tokens of the global crops, lightly's
  ``random_block_mask`` (DINOv2's sampler: half the images masked, 10-50%), the official optimizer (AdamW, each
  parameter's gradient clipped to norm 3, the last layer's gradient dropped while it is frozen, the per-step
  learning rates, weight decays and EMA taus of jaxssl's schedules).
- I-JEPA: the same ViT without a class token and fixed sine-cosine positions, lightly's ``IJEPAPredictorTIMM``
  and ``IJEPAMaskCollator`` (the official collator: a batch cut to its smallest context), the official loss
  (smooth L1 against the layer-normalised target tokens), AdamW at jaxssl's per-step rates and decays, EMA.

Each then writes the frozen encoder's features of the evaluation images (iBOT: the class token; I-JEPA: the
mean patch token, as jaxssl's configs), at initialisation and after training, and the timing line.
"""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import torch
import torch.nn.functional as F
from lightly.data.ijepa_collate import IJEPAMaskCollator
from lightly.loss import DINOLoss, IBOTPatchLoss
from lightly.models import utils
from lightly.models.modules import DINOProjectionHead, MaskedVisionTransformerTIMM
from lightly.models.modules.ijepa_timm import IJEPAPredictorTIMM
from timm.models.vision_transformer import VisionTransformer

import lightly_train


def vit(spec: dict, class_token: bool) -> VisionTransformer:
  return VisionTransformer(img_size=spec["image_size"], patch_size=spec["patch_size"], in_chans=spec["channels"],
                           embed_dim=spec["dim"], depth=spec["depth"], num_heads=spec["heads"], mlp_ratio=4.0,
                           qkv_bias=True, class_token=class_token, num_classes=0, dynamic_img_size=True,
                           global_pool="token" if class_token else "avg",
                           drop_path_rate=spec.get("drop_path", 0.0))


class Pooled(torch.nn.Module):
  """An encoder's evaluation features: the class token, or the mean patch token."""

  def __init__(self, backbone: MaskedVisionTransformerTIMM, pool: str):
    super().__init__()
    self.backbone, self.pool = backbone, pool

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    tokens = self.backbone.encode(images)
    return tokens[:, 0] if self.pool == "cls" else tokens[:, self.backbone.vit.num_prefix_tokens:].mean(1)


def adamw(modules: list[torch.nn.Module], o: dict) -> torch.optim.AdamW:
  """AdamW without weight decay on 1-D parameters (biases, norms), as the official iBOT and I-JEPA code."""
  params = [p for m in modules for p in m.parameters() if p.requires_grad]
  return torch.optim.AdamW([{"params": [p for p in params if p.ndim > 1], "decay": True},
                            {"params": [p for p in params if p.ndim <= 1], "decay": False, "weight_decay": 0.0}],
                           lr=0.0, betas=(o["b1"], o["b2"]))


def set_rates(opt: torch.optim.Optimizer, recipe: dict, step: int) -> None:
  for group in opt.param_groups:
    group["lr"] = recipe["learning_rates"][step]
    if group.get("decay"):
      group["weight_decay"] = recipe["weight_decays"][step]


@torch.no_grad()
def ema(target: torch.nn.Module, online: torch.nn.Module, tau: float) -> None:
  for t, o in zip(target.parameters(), online.parameters()):
    t.mul_(tau).add_(o.detach(), alpha=1.0 - tau)


class IBOT(torch.nn.Module):

  def __init__(self, spec: dict, m: dict):
    super().__init__()
    self.student = MaskedVisionTransformerTIMM(vit=vit(spec, class_token=True), pos_embed_initialization="learn")
    hidden = m["proj_hidden_dims"]
    if len(hidden) != 2 or hidden[0] != hidden[1]:
      raise ValueError(f"lightly's DINOProjectionHead has two hidden layers of one width, not {hidden}")
    head = lambda out: DINOProjectionHead(spec["dim"], hidden[0], m["bottleneck_dim"], out)
    self.head = head(m["out_dim"])
    self.patch_head = self.head if m["shared_head"] else head(m["patch_out_dim"])
    self.teacher = copy.deepcopy(self.student)
    self.teacher_head = self.copy(self.head, head(m["out_dim"]))   # weight-normed heads do not deepcopy
    self.teacher_patch_head = (self.teacher_head if m["shared_head"]
                               else self.copy(self.patch_head, head(m["patch_out_dim"])))
    for module in self.teachers():
      module.requires_grad_(False)

  @staticmethod
  def copy(source: torch.nn.Module, fresh: torch.nn.Module) -> torch.nn.Module:
    fresh.load_state_dict(source.state_dict())
    return fresh

  def students(self) -> list[torch.nn.Module]:
    return [self.student, self.head] + ([] if self.patch_head is self.head else [self.patch_head])

  def teachers(self) -> list[torch.nn.Module]:
    return [self.teacher, self.teacher_head] + ([] if self.teacher_patch_head is self.teacher_head
                                                else [self.teacher_patch_head])


def train_ibot(recipe: dict, arrays, loader) -> None:
  spec, m = recipe["spec"], recipe["method_config"]
  model = IBOT(spec, m)
  opt = adamw(model.students(), recipe["optim"])
  init = {"init_train": lightly_train.features(Pooled(model.student, "cls"), arrays["eval_train_images"],
                                               recipe["mean"], recipe["std"]),
          "init_test": lightly_train.features(Pooled(model.student, "cls"), arrays["test_images"],
                                              recipe["mean"], recipe["std"])}
  cls_loss = DINOLoss(m["out_dim"], student_temp=m["student_temperature"], center_momentum=m["center_momentum"])
  patch_loss = IBOTPatchLoss(m["patch_out_dim"], student_temp=m["student_temperature"],
                             center_momentum=m["patch_center_momentum"])
  grid = spec["image_size"] // spec["patch_size"]
  ratios, spreads = m["pred_ratios"], m["pred_ratio_vars"]
  if sorted(zip(ratios, spreads)) != [(0.0, 0.0), (0.3, 0.2)]:
    raise ValueError(f"lightly's block mask draws half unmasked, half 10-50%; not pred_ratios {ratios}")
  last_layers = [p for name, p in model.named_parameters() if "last_layer" in name and p.requires_grad]
  model.student.train(), model.head.train(), model.patch_head.train()
  model.teacher.eval()

  def step_fn(views, step):
    set_rates(opt, recipe, step)
    global_views, local_views = views[:2], views[2:]
    b = global_views[0].shape[0]
    images = torch.cat(global_views)
    mask = utils.random_block_mask((2 * b, grid, grid), min_block_aspect_ratio=m["pred_min_aspect"])
    temperature, patch_temperature = recipe["teacher_temperatures"][step], recipe["patch_temperatures"][step]
    with torch.no_grad():
      tokens = model.teacher.encode(images)
      teacher_cls = model.teacher_head(tokens[:, 0])
      teacher_patches = model.teacher_patch_head(tokens[:, 1:][mask.flatten(1)])
    with_cls = torch.cat([torch.zeros(2 * b, 1, dtype=torch.bool), mask.flatten(1)], dim=1)
    tokens = model.student.encode(images, mask=with_cls)
    student_cls = [model.head(tokens[:, 0])] + [model.head(model.student.encode(v)[:, 0]) for v in local_views]
    student_patches = model.patch_head(tokens[:, 1:][mask.flatten(1)])
    loss = (m["cls_weight"] * cls_loss(list(teacher_cls.chunk(2)), list(student_cls[0].chunk(2)) + student_cls[1:],
                                       teacher_temp=temperature)
            + m["patch_weight"] * patch_loss(teacher_patches, student_patches, mask, teacher_temp=patch_temperature))
    opt.zero_grad()
    loss.backward()
    for p in (p for module in model.students() for p in module.parameters() if p.grad is not None):
      norm = p.grad.norm()
      clip = recipe["clip"] / (norm + 1e-6)
      if clip < 1:
        p.grad.mul_(clip)
    if step < recipe["frozen_steps"]:
      for p in last_layers:
        p.grad = None
    opt.step()
    tau = recipe["ema_taus"][step]
    for target, online in zip(model.teachers(), model.students()):
      ema(target, online, tau)
    return loss

  losses, step, seconds = lightly_train.train_loop(loader, step_fn, recipe["total_steps"], recipe["log_every"])
  lightly_train.write_features(recipe, Pooled(model.student, "cls").eval(), arrays, init, recipe["total_steps"])
  lightly_train.print_timing(seconds, losses, step)


def train_ijepa(recipe: dict, arrays, images) -> None:
  spec, m = recipe["spec"], recipe["method_config"]
  encoder = MaskedVisionTransformerTIMM(vit=vit(spec, class_token=False), pos_embed_initialization="sincos")
  encoder.vit.pos_embed.requires_grad_(False)                       # official: fixed sine-cosine positions
  grid = spec["image_size"] // spec["patch_size"]
  predictor = IJEPAPredictorTIMM(num_patches=grid * grid, depth=m["predictor_depth"], mlp_dim=spec["dim"],
                                 predictor_embed_dim=m["predictor_dim"], num_heads=m["predictor_heads"])
  predictor.decoder.pos_embed.requires_grad_(False)
  target = copy.deepcopy(encoder).requires_grad_(False)
  opt = adamw([encoder, predictor], recipe["optim"])
  pooled = Pooled(encoder, "mean")
  init = {"init_train": lightly_train.features(pooled, arrays["eval_train_images"], recipe["mean"], recipe["std"]),
          "init_test": lightly_train.features(pooled, arrays["test_images"], recipe["mean"], recipe["std"])}
  collator = IJEPAMaskCollator(input_size=spec["image_size"], patch_size=spec["patch_size"],
                               enc_mask_scale=tuple(m["context_scale"]), pred_mask_scale=tuple(m["target_scale"]),
                               aspect_ratio=tuple(m["target_aspect"]), nenc=1, npred=m["num_targets"],
                               min_keep=recipe["min_keep"], allow_overlap=False)
  loader = torch.utils.data.DataLoader(
      images, batch_size=recipe["batch_size"], shuffle=True, drop_last=True, num_workers=recipe["workers"],
      persistent_workers=recipe["workers"] > 0, collate_fn=collator,
      generator=torch.Generator().manual_seed(recipe["seed"]))
  encoder.train(), predictor.train()
  context_sizes = []

  def step_fn(batch, step):
    views, masks_context, masks_target = batch
    x = views[0]
    set_rates(opt, recipe, step)
    with torch.no_grad():
      h = F.layer_norm(target.encode(x), (spec["dim"],))
      h = utils.repeat_interleave_batch(utils.apply_masks(h, masks_target), x.shape[0], repeat=len(masks_context))
    z = predictor(encoder.encode(x, idx_keep=masks_context[0]), masks_context, masks_target)
    loss = F.smooth_l1_loss(z, h)
    opt.zero_grad()
    loss.backward()
    opt.step()
    ema(target, encoder, recipe["ema_taus"][step])
    context_sizes.append(masks_context[0].shape[1])
    return loss

  losses, step, seconds = lightly_train.train_loop(loader, step_fn, recipe["total_steps"], recipe["log_every"])
  print(f"context sizes (the batch's smallest): mean {np.mean(context_sizes):.1f}, min {min(context_sizes)}",
        file=sys.stderr)
  lightly_train.write_features(recipe, pooled.eval(), arrays, init, recipe["total_steps"])
  lightly_train.print_timing(seconds, losses, step)


def main(path: str) -> None:
  with open(path) as f:
    recipe = json.load(f)
  torch.manual_seed(recipe["seed"])
  arrays = np.load(recipe["data"])
  transforms = [lightly_train.view_transform(v, recipe["mean"], recipe["std"]) for v in recipe["views"]]
  images = lightly_train.Views(arrays["train_images"], transforms)
  if recipe["method"] == "ijepa":
    train_ijepa(recipe, arrays, images)
    return
  loader = torch.utils.data.DataLoader(
      images, batch_size=recipe["batch_size"], shuffle=True, drop_last=True, num_workers=recipe["workers"],
      persistent_workers=recipe["workers"] > 0, generator=torch.Generator().manual_seed(recipe["seed"]))
  train_ibot(recipe, arrays, loader)


if __name__ == "__main__":
  main(sys.argv[1])
