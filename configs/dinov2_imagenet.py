"""DINOv2 on ImageNet as its authors train it (Oquab et al. 2023, arXiv:2304.07193; ``dinov2/configs/``), one
of three recipes after ``:``:

- ``large`` (default), ``vitl14.yaml``: ViT-L/14 with LayerScale 1e-5 and the SwiGLU feed-forward the file
  names, uniform drop path 0.4, separate DINO and iBOT heads (2048-2048-384, 131,072 prototypes), Sinkhorn-Knopp
  targets, KoLeo 0.1, EMA 0.994 -> 1, 500 official epochs of 1,250 iterations at batch 3,072 (96 GPUs x 32),
  AdamW lr 2e-4 x sqrt(batch / 1024) after 80 epochs of warm-up, weight decay 0.04 -> 0.2, no layer-wise
  decay, local crops of 98 px. The paper trains it on LVD-142M (the file: ImageNet-22k); here on the data
  after the size.
- ``giant``, ``vitg14.yaml``: the same with ViT-g/14 (1536 wide, 40 blocks, SwiGLU), 12 images per GPU.
- ``short``, ``vitl16_short.yaml`` (the default config): ViT-L/16 with a GELU MLP on ImageNet-1k, drop path
  0.3, one head shared by both token kinds (2048-2048-256, 65,536 prototypes), centred softmax targets, EMA 0.992
  -> 1, 100 epochs of 1,250 iterations at batch 2,048 (32 GPUs x 64), lr 0.004 x sqrt(batch / 1024) after 10
  epochs, weight decay 0.04 -> 0.4, layer-wise decay 0.9, local crops of 96 px. The README: 81.6% kNN, 82.9%
  linear.

All: 2 global crops of 224 px (scale 0.32-1) and 8 local crops (0.05-0.32), bicubic, DINO's colour jitter,
blur and solarisation; half the global crops masked 10-50% in blocks; student T 0.1, teacher T 0.04 -> 0.07
over 30 epochs; gradients clipped to 3 per module; the patch embedding at 0.2 x the learning rate; both last
layers at lr 0 for the first epoch; KoLeo and the masks' shares per group of the official per-GPU batch; the
linear probe on the class token and the mean patch token (DINOv2's ``linear.py`` with ``avgpool``). Counts are
in iterations, as the official ``OFFICIAL_EPOCH_LENGTH`` makes them, whatever the data.

    python -m jaxssl.main --config configs/dinov2_imagenet.py --workdir gs://BUCKET/runs/dinov2_l14
    python -m jaxssl.main --config configs/dinov2_imagenet.py:short --workdir gs://BUCKET/runs/dinov2_l16_short
    python -m jaxssl.main --config configs/dinov2_imagenet.py:giant,imagenette --workdir runs/dinov2_g14

With imagenette or a folder the batch is 256 (``giant``: 192) and the groups at most 32 images (whole groups on
8 devices). Not reproduced:
the local crops' own blur probability (0.5; here the first global crop's), the high-resolution adaptation of the
long runs (518 px), and fp16 with a gradient scaler (here bfloat16).
"""

from jaxssl import defaults
from jaxssl.methods import dinov2

EPOCH = 1250                                  # the official OFFICIAL_EPOCH_LENGTH, in iterations
RECIPES = {
    "large": dict(encoder="vit_large", patch=14, mlp="swiglu", drop_path=0.4, batch=3072, group=32, separate=True,
                  prototypes=131072, bottleneck=384, centering="sinkhorn", momentum=0.994, epochs=500,
                  wd_end=0.2, base_lr=2e-4, warmup=80, layer_decay=1.0, local_size=98),
    "short": dict(encoder="vit_large", patch=16, mlp="gelu", drop_path=0.3, batch=2048, group=64, separate=False,
                  prototypes=65536, bottleneck=256, centering="center", momentum=0.992, epochs=100, wd_end=0.4,
                  base_lr=4e-3, warmup=10, layer_decay=0.9, local_size=96),
}
RECIPES["giant"] = dict(RECIPES["large"], encoder="vit_giant", batch=3072, group=12)


def get_config(arg: str = ""):
  size, data = defaults.size_and_data(arg, RECIPES, default_size="large")
  r = RECIPES[size]
  config = defaults.imagenet(defaults.get_config("dinov2"), data, batch_size=r["batch"], encoder=r["encoder"],
                             patch_size=r["patch"])
  group = r["group"]
  if data != "imagenet2012":
    config.train.batch_size = 192 if size == "giant" else 256
    group = min(group, config.train.batch_size // 8)
  mo, m, o, a = config.model, config.method, config.optim, config.augment
  mo.mlp, mo.drop_path_rate, mo.drop_path_uniform, mo.layer_scale = r["mlp"], r["drop_path"], True, 1e-5
  mo.pool = "cls_mean"
  m.separate_head, m.centering, m.base_momentum, m.group_size = r["separate"], r["centering"], r["momentum"], group
  m.out_dim = m.patch_out_dim = r["prototypes"]
  m.bottleneck_dim = m.patch_bottleneck_dim = r["bottleneck"]
  m.teacher_temperature_warmup_steps, m.teacher_temperature_hold_steps = 30 * EPOCH, 1
  config.train.num_steps = r["epochs"] * EPOCH
  o.base_lr, o.weight_decay, o.weight_decay_end, o.layer_decay = r["base_lr"], 0.04, r["wd_end"], r["layer_decay"]
  o.warmup_epochs, o.warmup_steps = 0.0, r["warmup"] * EPOCH
  o.rules = dinov2.freeze_last_layers(EPOCH) + (("encoder/patch_embed/.*", 0.2),)
  a.crop_scale, a.num_local_crops, a.local_size, a.local_crop_scale = (0.32, 1.0), 8, r["local_size"], (0.05, 0.32)
  a.blur_probs, a.solarize_probs = (1.0, 0.1), (0.0, 0.2)
  a.interpolation = "bicubic"
  return config
