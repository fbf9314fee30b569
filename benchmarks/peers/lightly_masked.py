"""lightly's side of accuracy_vs_lightly.py for iBOT, I-JEPA, MSN and DINO with a ViT: lightly's modules and
losses, trained on the recipe jaxssl's config describes.

    .venv-lightly/bin/python benchmarks/peers/lightly_masked.py RECIPE.json     # written by accuracy_vs_lightly.py
    .venv-lightly/bin/python benchmarks/peers/lightly_masked.py --throughput RECIPE.json STEPS   # masked_throughput.py

- iBOT: a timm ``VisionTransformer`` in lightly's ``MaskedVisionTransformerTIMM`` (its mask token), lightly's
  ``DINOProjectionHead`` (one head for class and patch tokens when the recipe shares it), ``DINOLoss`` on the
  class tokens of every crop, ``IBOTPatchLoss`` on the masked patch tokens of the global crops, lightly's
  ``random_block_mask`` (DINOv2's sampler: half the images masked, 10-50%), the official optimizer (AdamW, each
  parameter's gradient clipped to norm 3, the last layer's gradient dropped while it is frozen, the per-step
  learning rates, weight decays and EMA taus of jaxssl's schedules).
- DINO (for benchmarks/speed/vit_mfu.py's GPU row, and accuracy_vs_lightly.py with a ViT config): iBOT's student,
  teacher, head, ``DINOLoss``, clipping, frozen last layer and EMA, without the masks and the patch loss; the
  crops go through the networks grouped by resolution, as the official ``MultiCropWrapper``.
- I-JEPA: the same ViT without a class token and fixed sine-cosine positions, lightly's ``IJEPAPredictorTIMM``
  and ``IJEPAMaskCollator`` (the official collator: a batch cut to its smallest context), the official loss
  (smooth L1 against the layer-normalised target tokens), AdamW at jaxssl's per-step rates and decays, EMA.
- MSN: lightly's example (examples/pytorch/msn.py) on the recipe: the ViT in ``MaskedVisionTransformerTIMM``,
  ``MSNProjectionHead``, prototypes as a bias-free ``Linear``'s weight passed to ``MSNLoss`` (or ``PMSNLoss``) as
  ``.data`` (as the example: the prototypes do not train), ``random_token_mask`` per image on the anchor and the
  focal views, the EMA target backbone and head; AdamW at jaxssl's per-step rates and decays, the backbone's and
  head's gradients clipped to the recipe's norm.

Each then writes the frozen encoder's features of the evaluation images (iBOT: the class token; I-JEPA: the
mean patch token, as jaxssl's configs), at initialisation and after training, and the timing line.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from lightly.data.ijepa_collate import IJEPAMaskCollator
from lightly.loss import DINOLoss, IBOTPatchLoss, MSNLoss, PMSNLoss
from lightly.models import utils
from lightly.models.modules import DINOProjectionHead, MaskedVisionTransformerTIMM
from lightly.models.modules.heads import MSNProjectionHead
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


def dino_head_factory(spec: dict, m: dict):
  """``head(out) -> DINOProjectionHead`` of the recipe's sizes (lightly's has two hidden layers of one width)."""
  hidden = m["proj_hidden_dims"]
  if len(hidden) != 2 or hidden[0] != hidden[1]:
    raise ValueError(f"lightly's DINOProjectionHead has two hidden layers of one width, not {hidden}")
  return lambda out: DINOProjectionHead(spec["dim"], hidden[0], m["bottleneck_dim"], out)


class IBOT(torch.nn.Module):

  def __init__(self, spec: dict, m: dict):
    super().__init__()
    self.student = MaskedVisionTransformerTIMM(vit=vit(spec, class_token=True), pos_embed_initialization="learn")
    head = dino_head_factory(spec, m)
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


class DINO(torch.nn.Module):
  """DINO's student and teacher: the ViT in ``MaskedVisionTransformerTIMM`` (no mask is used) and a
  ``DINOProjectionHead`` each."""

  def __init__(self, spec: dict, m: dict):
    super().__init__()
    self.student = MaskedVisionTransformerTIMM(vit=vit(spec, class_token=True), pos_embed_initialization="learn")
    head = dino_head_factory(spec, m)
    self.head = head(m["out_dim"])
    self.teacher = copy.deepcopy(self.student)
    self.teacher_head = IBOT.copy(self.head, head(m["out_dim"]))    # weight-normed heads do not deepcopy
    for module in self.teachers():
      module.requires_grad_(False)

  def students(self) -> list[torch.nn.Module]:
    return [self.student, self.head]

  def teachers(self) -> list[torch.nn.Module]:
    return [self.teacher, self.teacher_head]


def distillation_update(model, opt: torch.optim.Optimizer, loss: torch.Tensor, recipe: dict, step: int,
                        last_layers: list[torch.Tensor]) -> None:
  """The official DINO / iBOT update after the loss: backward, each student parameter's gradient clipped to norm
  ``recipe["clip"]`` (``clip_gradients``), the last layers' gradients dropped while they are frozen, AdamW, the
  teachers' EMA."""
  opt.zero_grad()
  loss.backward()
  for p in (p for module in model.students() for p in module.parameters() if p.grad is not None):
    scale = recipe["clip"] / (p.grad.norm() + 1e-6)
    if scale < 1:
      p.grad.mul_(scale)
  if step < recipe["frozen_steps"]:
    for p in last_layers:
      p.grad = None
  opt.step()
  tau = recipe["ema_taus"][step]
  for target, online in zip(model.teachers(), model.students()):
    ema(target, online, tau)


def dino_step(recipe: dict, model: DINO, opt: torch.optim.Optimizer, autocast=None):
  """DINO's training step ``step_fn(views, step) -> loss``: views are the crops' batches [B, C, H, W], the two
  global crops first; the crops of one size go through the networks as one batch. ``autocast`` (a
  ``torch.autocast`` context) wraps the forward passes and the loss."""
  m = recipe["method_config"]
  loss_fn = DINOLoss(m["out_dim"], student_temp=m["student_temperature"], center_momentum=m["center_momentum"])
  loss_fn.to(next(model.parameters()).device)
  last_layers = [p for name, p in model.named_parameters() if "last_layer" in name and p.requires_grad]
  model.student.train(), model.head.train()
  model.teacher.eval()

  def student(views):
    out = []
    for _, run in itertools.groupby(views, key=lambda v: v.shape[-1]):   # the globals, then the locals
      run = list(run)
      out += list(model.head(model.student.encode(torch.cat(run))[:, 0]).chunk(len(run)))
    return out

  def step_fn(views, step):
    set_rates(opt, recipe, step)
    with autocast or contextlib.nullcontext():
      with torch.no_grad():
        teacher = model.teacher_head(model.teacher.encode(torch.cat(views[:2]))[:, 0]).chunk(2)
      loss = loss_fn(list(teacher), student(views), teacher_temp=recipe["teacher_temperatures"][step])
    distillation_update(model, opt, loss, recipe, step, last_layers)
    return loss

  return step_fn


def ibot_step(recipe: dict, model: IBOT, opt: torch.optim.Optimizer, score_every_patch: bool = False):
  """iBOT's training step ``step_fn(views, step) -> loss``: views are the crops' batches [B, C, H, W], the two
  global crops first; the block masks are drawn inside it. lightly's heads score only the masked patch tokens;
  ``score_every_patch`` scores all of them and then keeps the masked ones (the official main_ibot.py's cost,
  the same loss)."""
  spec, m = recipe["spec"], recipe["method_config"]
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
    masked = mask.flatten(1)

    def score(head, patches):          # [2B, L, D] -> the masked tokens' logits [M, K]
      if score_every_patch:
        return head(patches.flatten(0, 1)).view(patches.shape[0], patches.shape[1], -1)[masked]
      return head(patches[masked])

    with torch.no_grad():
      tokens = model.teacher.encode(images)
      teacher_cls = model.teacher_head(tokens[:, 0])
      teacher_patches = score(model.teacher_patch_head, tokens[:, 1:])
    with_cls = torch.cat([torch.zeros(2 * b, 1, dtype=torch.bool), masked], dim=1)
    tokens = model.student.encode(images, mask=with_cls)
    student_cls = [model.head(tokens[:, 0])] + [model.head(model.student.encode(v)[:, 0]) for v in local_views]
    student_patches = score(model.patch_head, tokens[:, 1:])
    loss = (m["cls_weight"] * cls_loss(list(teacher_cls.chunk(2)), list(student_cls[0].chunk(2)) + student_cls[1:],
                                       teacher_temp=temperature)
            + m["patch_weight"] * patch_loss(teacher_patches, student_patches, mask, teacher_temp=patch_temperature))
    distillation_update(model, opt, loss, recipe, step, last_layers)
    return loss

  return step_fn


def train_distillation(recipe: dict, arrays, loader) -> None:
  """iBOT or DINO (``recipe["method"]``) trained on the loader, its class token's features written."""
  model_class, make_step = (DINO, dino_step) if recipe["method"] == "dino" else (IBOT, ibot_step)
  model = model_class(recipe["spec"], recipe["method_config"])
  opt = adamw(model.students(), recipe["optim"])
  pooled = Pooled(model.student, "cls")
  init = {"init_train": lightly_train.features(pooled, arrays["eval_train_images"], recipe["mean"], recipe["std"]),
          "init_test": lightly_train.features(pooled, arrays["test_images"], recipe["mean"], recipe["std"])}
  step_fn = make_step(recipe, model, opt)
  losses, step, seconds = lightly_train.train_loop(loader, step_fn, recipe["total_steps"], recipe["log_every"])
  lightly_train.write_features(recipe, pooled.eval(), arrays, init, recipe["total_steps"])
  lightly_train.print_timing(seconds, losses, step)


class MSN(torch.nn.Module):
  """lightly's MSN example model at the recipe's sizes."""

  def __init__(self, spec: dict, m: dict):
    super().__init__()
    hidden = m["proj_hidden_dims"]
    if len(hidden) != 2 or hidden[0] != hidden[1]:
      raise ValueError(f"lightly's MSNProjectionHead has two hidden layers of one width, not {hidden}")
    self.backbone = MaskedVisionTransformerTIMM(vit=vit(spec, class_token=True), pos_embed_initialization="learn")
    self.head = MSNProjectionHead(spec["dim"], hidden[0], m["proj_dim"])
    self.target_backbone = copy.deepcopy(self.backbone).requires_grad_(False)
    self.target_head = copy.deepcopy(self.head).requires_grad_(False)
    self.prototypes = torch.nn.Linear(m["proj_dim"], m["num_prototypes"], bias=False).weight
    self.grid = spec["image_size"] // spec["patch_size"]
    self.patch_size = spec["patch_size"]

  def forward_masked(self, images: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    length = (images.shape[-1] // self.patch_size) ** 2
    idx_keep, _ = utils.random_token_mask(size=(images.shape[0], length), mask_ratio=mask_ratio,
                                          device=images.device)
    return self.head(self.backbone(images=images, idx_keep=idx_keep))


def msn_step(recipe: dict, model: MSN, opt: torch.optim.Optimizer):
  """MSN's step ``step_fn(views, step) -> loss``: view 0 the target, view 1 the anchor, the rest focal."""
  m = recipe["method_config"]
  loss_fn = (PMSNLoss(temperature=m["temperature"], sinkhorn_iterations=m["sinkhorn_iterations"],
                      regularization_weight=m["me_max_weight"], power_law_exponent=m["power_law_exponent"])
             if m["prior"] == "power_law" else
             MSNLoss(temperature=m["temperature"], sinkhorn_iterations=m["sinkhorn_iterations"],
                     regularization_weight=m["me_max_weight"]))
  model.backbone.train(), model.head.train(), model.target_backbone.train(), model.target_head.train()
  online = list(model.backbone.parameters()) + list(model.head.parameters())

  def step_fn(views, step):
    set_rates(opt, recipe, step)
    with torch.no_grad():
      targets = model.target_head(model.target_backbone(images=views[0]))
    anchors = torch.cat([model.forward_masked(views[1], m["patch_drop"]),
                         model.forward_masked(torch.cat(views[2:]), m["patch_drop"])])
    loss = loss_fn(anchors, targets, model.prototypes.data, target_sharpen_temperature=m["sharpen_temperature"])
    opt.zero_grad()
    loss.backward()
    if recipe["clip"] > 0:
      torch.nn.utils.clip_grad_norm_(online, recipe["clip"])
    opt.step()
    tau = recipe["ema_taus"][step]
    ema(model.target_backbone, model.backbone, tau)
    ema(model.target_head, model.head, tau)
    return loss

  return step_fn


def train_msn(recipe: dict, arrays, loader) -> None:
  model = MSN(recipe["spec"], recipe["method_config"])
  opt = adamw([model.backbone, model.head], recipe["optim"])
  pooled = Pooled(model.backbone, "cls")
  init = {"init_train": lightly_train.features(pooled, arrays["eval_train_images"], recipe["mean"], recipe["std"]),
          "init_test": lightly_train.features(pooled, arrays["test_images"], recipe["mean"], recipe["std"])}
  losses, step, seconds = lightly_train.train_loop(loader, msn_step(recipe, model, opt), recipe["total_steps"],
                                                   recipe["log_every"])
  lightly_train.write_features(recipe, pooled.eval(), arrays, init, recipe["total_steps"])
  lightly_train.print_timing(seconds, losses, step)


class IJEPA:
  """lightly's I-JEPA parts at the recipe's sizes: the context encoder, its EMA target, the predictor, the
  official mask collator and AdamW; ``step(batch, step) -> loss`` takes the collator's output."""

  def __init__(self, recipe: dict):
    spec, m = recipe["spec"], recipe["method_config"]
    self.recipe, self.dim = recipe, spec["dim"]
    self.encoder = MaskedVisionTransformerTIMM(vit=vit(spec, class_token=False), pos_embed_initialization="sincos")
    self.encoder.vit.pos_embed.requires_grad_(False)                  # official: fixed sine-cosine positions
    grid = spec["image_size"] // spec["patch_size"]
    self.predictor = IJEPAPredictorTIMM(num_patches=grid * grid, depth=m["predictor_depth"], mlp_dim=spec["dim"],
                                        predictor_embed_dim=m["predictor_dim"], num_heads=m["predictor_heads"])
    self.predictor.decoder.pos_embed.requires_grad_(False)
    self.target = copy.deepcopy(self.encoder).requires_grad_(False)
    self.opt = adamw([self.encoder, self.predictor], recipe["optim"])
    self.collator = IJEPAMaskCollator(input_size=spec["image_size"], patch_size=spec["patch_size"],
                                      enc_mask_scale=tuple(m["context_scale"]),
                                      pred_mask_scale=tuple(m["target_scale"]), aspect_ratio=tuple(m["target_aspect"]),
                                      nenc=1, npred=m["num_targets"], min_keep=recipe["min_keep"], allow_overlap=False)
    self.context_sizes: list[int] = []

  def step(self, batch, step: int) -> torch.Tensor:
    views, masks_context, masks_target = batch
    x = views[0]
    set_rates(self.opt, self.recipe, step)
    with torch.no_grad():
      h = F.layer_norm(self.target.encode(x), (self.dim,))
      h = utils.repeat_interleave_batch(utils.apply_masks(h, masks_target), x.shape[0], repeat=len(masks_context))
    z = self.predictor(self.encoder.encode(x, idx_keep=masks_context[0]), masks_context, masks_target)
    loss = F.smooth_l1_loss(z, h)
    self.opt.zero_grad()
    loss.backward()
    self.opt.step()
    ema(self.target, self.encoder, self.recipe["ema_taus"][step])
    self.context_sizes.append(masks_context[0].shape[1])
    return loss


def train_ijepa(recipe: dict, arrays, images) -> None:
  model = IJEPA(recipe)
  pooled = Pooled(model.encoder, "mean")
  init = {"init_train": lightly_train.features(pooled, arrays["eval_train_images"], recipe["mean"], recipe["std"]),
          "init_test": lightly_train.features(pooled, arrays["test_images"], recipe["mean"], recipe["std"])}
  loader = torch.utils.data.DataLoader(
      images, batch_size=recipe["batch_size"], shuffle=True, drop_last=True, num_workers=recipe["workers"],
      persistent_workers=recipe["workers"] > 0, collate_fn=model.collator,
      generator=torch.Generator().manual_seed(recipe["seed"]))
  model.encoder.train(), model.predictor.train()
  losses, step, seconds = lightly_train.train_loop(loader, model.step, recipe["total_steps"], recipe["log_every"])
  sizes = model.context_sizes
  print(f"context sizes (the batch's smallest): mean {np.mean(sizes):.1f}, min {min(sizes)}", file=sys.stderr)
  lightly_train.write_features(recipe, pooled.eval(), arrays, init, recipe["total_steps"])
  lightly_train.print_timing(seconds, losses, step)


def throughput(recipe: dict, steps: int, warmup: int = 2) -> float:
  """lightly's training step of the recipe's method in images/s, on random crops already in memory (no
  augmentation): iBOT's block masks and I-JEPA's collator (its masks, and stacking the batch) are drawn inside
  each step, as jaxssl draws its masks inside its step. DINO's step runs on the GPU when there is one, under
  bfloat16 autocast when ``recipe["dtype"]`` says so; iBOT's and I-JEPA's on the CPU in float32."""
  torch.manual_seed(0)
  n, channels = recipe["batch_size"], recipe["channels"]
  device = torch.device("cuda" if recipe["method"] == "dino" and torch.cuda.is_available() else "cpu")
  views = [torch.randn(n, channels, v["size"], v["size"], device=device) for v in recipe["views"]]
  if recipe["method"] == "dino":
    model = DINO(recipe["spec"], recipe["method_config"]).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.get("dtype") == "bfloat16")
    step_fn = dino_step(recipe, model, adamw(model.students(), recipe["optim"]), autocast)
    one_step = lambda step: step_fn(views, step)
  elif recipe["method"] == "ijepa":
    model = IJEPA(recipe)
    model.encoder.train(), model.predictor.train()
    samples = [tuple(v[i] for v in views) for i in range(n)]
    one_step = lambda step: model.step(model.collator(samples), step)
  else:
    ibot = IBOT(recipe["spec"], recipe["method_config"])
    step_fn = ibot_step(recipe, ibot, adamw(ibot.students(), recipe["optim"]),
                        score_every_patch=recipe.get("score_every_patch", False))
    one_step = lambda step: step_fn(views, step)
  sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
  for step in range(warmup):
    one_step(step)
  sync()
  start = time.perf_counter()
  for step in range(warmup, warmup + steps):
    one_step(step)
  sync()
  return steps * n / (time.perf_counter() - start)


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
  if recipe["method"] == "msn":
    train_msn(recipe, arrays, loader)
    return
  train_distillation(recipe, arrays, loader)


if __name__ == "__main__":
  if len(sys.argv) == 4 and sys.argv[1] == "--throughput":
    with open(sys.argv[2]) as f:
      print(json.dumps({"images_per_s": throughput(json.load(f), int(sys.argv[3]))}))
  else:
    main(sys.argv[1])
