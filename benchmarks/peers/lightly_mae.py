"""lightly's side of benchmarks/parity/mae_parity.py, mae_throughput.py and accuracy_vs_lightly.py (``--methods
mae``): lightly's MAE (a timm VisionTransformer in ``MaskedVisionTransformerTIMM`` and ``MAEDecoderTIMM``, which
follow the official models_mae.py).

    .venv-lightly/bin/python benchmarks/peers/lightly_mae.py IN.npz OUT.npz       # jaxssl's weights, given masks
    .venv-lightly/bin/python benchmarks/peers/lightly_mae.py --throughput SPEC STEPS
    .venv-lightly/bin/python benchmarks/peers/lightly_mae.py --train RECIPE.json  # a whole run, as lightly_train.py

Runs in the PyTorch venv (``pip install torch==2.14.1 torchvision==0.29.1 lightly timm``). The loss is the
official ``forward_loss`` (per-patch normalised targets with the unbiased variance, the mean over the removed
patches); lightly's MAE example trains with a plain MSE on unnormalised pixels instead (its ``MSELoss``), which
is where it departs from the official recipe.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from lightly.models import utils
from lightly.models.modules import MAEDecoderTIMM, MaskedVisionTransformerTIMM
from timm.models.vision_transformer import VisionTransformer


class LightlyMAE(torch.nn.Module):
  """lightly's MAE example model (its ``forward_encoder`` / ``forward_decoder``), sizes from ``spec``."""

  def __init__(self, spec: dict):
    super().__init__()
    vit = VisionTransformer(img_size=spec["image_size"], patch_size=spec["patch_size"], in_chans=spec["channels"],
                            embed_dim=spec["dim"], depth=spec["depth"], num_heads=spec["heads"], mlp_ratio=4.0,
                            qkv_bias=True, class_token=True, num_classes=0)
    self.patch_size = spec["patch_size"]
    self.backbone = MaskedVisionTransformerTIMM(vit=vit)
    self.sequence_length = self.backbone.sequence_length
    self.decoder = MAEDecoderTIMM(num_patches=vit.patch_embed.num_patches, patch_size=spec["patch_size"],
                                  in_chans=spec["channels"], embed_dim=spec["dim"],
                                  decoder_embed_dim=spec["decoder_dim"], decoder_depth=spec["decoder_depth"],
                                  decoder_num_heads=spec["decoder_heads"], mlp_ratio=4.0)

  def forward(self, images: torch.Tensor, idx_keep: torch.Tensor, idx_mask: torch.Tensor) -> torch.Tensor:
    """Predictions of the removed patches [N, L - K, p*p*C], in the order of ``idx_mask``."""
    encoded = self.backbone.encode(images=images, idx_keep=idx_keep)
    decoded = self.decoder.embed(encoded)
    tokens = utils.repeat_token(self.decoder.mask_token, (images.shape[0], self.sequence_length))
    tokens = utils.set_at_index(tokens, idx_keep, decoded.type_as(tokens))
    return self.decoder.predict(utils.get_at_index(self.decoder.decode(tokens), idx_mask))


def official_loss(predictions: torch.Tensor, patches: torch.Tensor, norm_pix: bool = True) -> torch.Tensor:
  """models_mae.forward_loss on the removed patches only (mask 1 there)."""
  target = patches
  if norm_pix:
    mean = target.mean(dim=-1, keepdim=True)
    var = target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.e-6) ** .5
  return ((predictions - target) ** 2).mean(dim=-1).mean()


def weight_map(model: LightlyMAE, depth: int, decoder_depth: int) -> dict[str, tuple[torch.Tensor, str]]:
  """jaxssl parameter path -> (lightly tensor, how to convert: "" as is, "T" transposed, "conv" HWIO -> OIHW)."""
  vit, dec = model.backbone.vit, model.decoder
  out = {"encoder/patch_embed/kernel": (vit.patch_embed.proj.weight, "conv"),
         "encoder/patch_embed/bias": (vit.patch_embed.proj.bias, ""),
         "encoder/cls_token": (vit.cls_token, ""),
         "encoder/norm/scale": (vit.norm.weight, ""), "encoder/norm/bias": (vit.norm.bias, ""),
         "decoder_embed/kernel": (dec.decoder_embed.weight, "T"), "decoder_embed/bias": (dec.decoder_embed.bias, ""),
         "mask_token": (dec.mask_token, ""),
         "decoder_norm/scale": (dec.decoder_norm.weight, ""), "decoder_norm/bias": (dec.decoder_norm.bias, ""),
         "decoder_pred/kernel": (dec.decoder_pred.weight, "T"), "decoder_pred/bias": (dec.decoder_pred.bias, "")}

  def block(prefix, b):
    out.update({f"{prefix}/norm1/scale": (b.norm1.weight, ""), f"{prefix}/norm1/bias": (b.norm1.bias, ""),
                f"{prefix}/attn/qkv/kernel": (b.attn.qkv.weight, "T"), f"{prefix}/attn/qkv/bias": (b.attn.qkv.bias, ""),
                f"{prefix}/attn/proj/kernel": (b.attn.proj.weight, "T"),
                f"{prefix}/attn/proj/bias": (b.attn.proj.bias, ""),
                f"{prefix}/norm2/scale": (b.norm2.weight, ""), f"{prefix}/norm2/bias": (b.norm2.bias, ""),
                f"{prefix}/mlp/fc1/kernel": (b.mlp.fc1.weight, "T"), f"{prefix}/mlp/fc1/bias": (b.mlp.fc1.bias, ""),
                f"{prefix}/mlp/fc2/kernel": (b.mlp.fc2.weight, "T"), f"{prefix}/mlp/fc2/bias": (b.mlp.fc2.bias, "")})

  for i in range(depth):
    block(f"encoder/block_{i}", vit.blocks[i])
  for i in range(decoder_depth):
    block(f"decoder_block_{i}", dec.decoder_blocks[i])
  return out


def to_torch(array: np.ndarray, how: str) -> torch.Tensor:
  if how == "T":
    array = array.T
  elif how == "conv":
    array = array.transpose(3, 2, 0, 1)
  return torch.from_numpy(np.ascontiguousarray(array))


def to_jax(tensor: torch.Tensor, how: str) -> np.ndarray:
  array = tensor.detach().numpy()
  if how == "T":
    return array.T
  if how == "conv":
    return array.transpose(2, 3, 1, 0)
  return array


def load(model: LightlyMAE, spec: dict, params: dict[str, np.ndarray]) -> dict:
  mapping = weight_map(model, spec["depth"], spec["decoder_depth"])
  missing = sorted(set(params) - set(mapping))
  if missing:
    raise SystemExit(f"no lightly tensor for jaxssl parameters {missing}")
  with torch.no_grad():
    for name, (tensor, how) in mapping.items():
      value = to_torch(params[name], how)
      if tuple(value.shape) != tuple(tensor.shape):
        raise SystemExit(f"{name}: jaxssl {tuple(value.shape)} -> lightly {tuple(tensor.shape)}")
      tensor.copy_(value)
  return mapping


def lightly_indices(ids_keep: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
  """jaxssl's kept patches -> lightly's token indices (the class token is token 0, always kept)."""
  n = ids_keep.shape[0]
  keep = np.concatenate([np.zeros((n, 1), np.int64), ids_keep.astype(np.int64) + 1], axis=1)
  removed = np.stack([np.flatnonzero(row == 1) + 1 for row in mask]).astype(np.int64)
  return torch.from_numpy(keep), torch.from_numpy(removed)


def optimizer(model: LightlyMAE, spec: dict) -> torch.optim.Optimizer:
  """AdamW as the official main_pretrain.py: no weight decay on 1-D parameters (biases, norms)."""
  params = [p for p in model.parameters() if p.requires_grad]
  decay = [p for p in params if p.ndim > 1]
  no_decay = [p for p in params if p.ndim <= 1]
  return torch.optim.AdamW([{"params": decay, "weight_decay": spec["weight_decay"]},
                            {"params": no_decay, "weight_decay": 0.0}], lr=spec["lr"], betas=(0.9, 0.95))


def main(path_in: str, path_out: str) -> int:
  torch.manual_seed(0)
  data = np.load(path_in)
  spec = json.loads(str(data["spec"]))
  params = {k[len("param:"):]: data[k] for k in data.files if k.startswith("param:")}
  model = LightlyMAE(spec)
  mapping = load(model, spec, params)
  out: dict[str, np.ndarray] = {
      "decoder_pos_embed": model.decoder.decoder_pos_embed.detach().numpy()[0],
      "encoder_pos_embed": model.backbone.vit.pos_embed.detach().numpy()[0]}
  opt = optimizer(model, spec)
  losses = []
  p = spec["patch_size"]
  for step in range(spec["steps"]):
    images = torch.from_numpy(data[f"images{step}"]).permute(0, 3, 1, 2).contiguous()      # NHWC -> NCHW
    idx_keep, idx_mask = lightly_indices(data[f"ids_keep{step}"], data[f"mask{step}"])
    predictions = model(images, idx_keep, idx_mask)
    target = utils.get_at_index(utils.patchify(images, p), idx_mask - 1)
    loss = official_loss(predictions, target, spec["norm_pix"])
    opt.zero_grad()
    loss.backward()
    if step == 0:
      for name, (tensor, how) in mapping.items():
        out[f"grad:{name}"] = to_jax(tensor.grad, how)
    opt.step()
    losses.append(float(loss))
  out["losses"] = np.asarray(losses)
  for name, (tensor, how) in mapping.items():
    out[f"param:{name}"] = to_jax(tensor, how)
  np.savez(path_out, **out)
  return 0


def throughput(spec: dict, steps: int, warmup: int = 2) -> float:
  """lightly's MAE training step (random masks as its example, forward, backward, AdamW) in images/s, on the
  GPU when there is one, under bfloat16 autocast when ``spec["dtype"]`` says so."""
  torch.manual_seed(0)
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  model = LightlyMAE(spec).to(device)
  opt = optimizer(model, spec)
  n = spec["batch"]
  images = torch.randn(n, spec["channels"], spec["image_size"], spec["image_size"], device=device)
  p = spec["patch_size"]
  autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=spec.get("dtype") == "bfloat16")

  def one_step():
    idx_keep, idx_mask = utils.random_token_mask((n, model.sequence_length), mask_ratio=spec["mask_ratio"],
                                                 device=device)
    with autocast:
      predictions = model(images, idx_keep, idx_mask)
      loss = official_loss(predictions.float(), utils.get_at_index(utils.patchify(images, p), idx_mask - 1))
    opt.zero_grad()
    loss.backward()
    opt.step()

  def sync():
    if device.type == "cuda":
      torch.cuda.synchronize()

  for _ in range(warmup):
    one_step()
  sync()
  start = time.perf_counter()
  for _ in range(steps):
    one_step()
  sync()
  return steps * n / (time.perf_counter() - start)


def train(path: str) -> None:
  """lightly's MAE trained on accuracy_vs_lightly.py's recipe (the view through torchvision's transforms in
  DataLoader workers, lightly's random token masks, the official loss, AdamW at jaxssl's per-step learning
  rates), then the class-token features of the frozen encoder, at initialisation and after training."""
  import lightly_train

  with open(path) as f:
    recipe = json.load(f)
  torch.manual_seed(recipe["seed"])
  arrays = np.load(recipe["data"])
  mean, std, spec = recipe["mean"], recipe["std"], recipe["mae"]
  model = LightlyMAE(spec)
  o = recipe["optim"]
  opt = optimizer(model, {"weight_decay": o["weight_decay"], "lr": recipe["learning_rates"][0]})
  for group in opt.param_groups:
    group["betas"] = (o["b1"], o["b2"])
  transforms = [lightly_train.view_transform(v, mean, std) for v in recipe["views"]]
  loader = torch.utils.data.DataLoader(
      lightly_train.Views(arrays["train_images"], transforms), batch_size=recipe["batch_size"], shuffle=True,
      drop_last=True, num_workers=recipe["workers"], persistent_workers=recipe["workers"] > 0,
      generator=torch.Generator().manual_seed(recipe["seed"]))
  encoder = model.backbone          # forward(images): the class token after the final norm
  init = {"init_train": lightly_train.features(encoder, arrays["eval_train_images"], mean, std),
          "init_test": lightly_train.features(encoder, arrays["test_images"], mean, std)}
  model.train()
  p = spec["patch_size"]

  def step_fn(views, step):
    images = views[0]
    for group in opt.param_groups:
      group["lr"] = recipe["learning_rates"][step]
    idx_keep, idx_mask = utils.random_token_mask((images.shape[0], model.sequence_length),
                                                 mask_ratio=spec["mask_ratio"])
    predictions = model(images, idx_keep, idx_mask)
    loss = official_loss(predictions, utils.get_at_index(utils.patchify(images, p), idx_mask - 1),
                         spec["norm_pix"])
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss

  losses, step, seconds = lightly_train.train_loop(loader, step_fn, recipe["total_steps"], recipe["log_every"])
  lightly_train.write_features(recipe, encoder, arrays, init, recipe["total_steps"])
  lightly_train.print_timing(seconds, losses, step)

if __name__ == "__main__":
  if len(sys.argv) == 3 and sys.argv[1] == "--train":
    train(sys.argv[2])
    sys.exit(0)
  if len(sys.argv) == 4 and sys.argv[1] == "--throughput":
    spec = json.loads(sys.argv[2])
    print(json.dumps({"images_per_s": throughput(spec, int(sys.argv[3]))}))
    sys.exit(0)
  sys.exit(main(sys.argv[1], sys.argv[2]))
