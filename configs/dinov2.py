"""DINOv2 on Fashion-MNIST with a micro ViT (4 blocks, 64 wide, LayerScale 1e-5) on 4x4 patches: multi-crop
2 x 28 + 4 x 12.

    python -m jaxssl.main --config configs/dinov2.py --workdir runs/dinov2

The official recipe (``ssl_default_config.yaml`` with ``vitl14.yaml``'s heads and Sinkhorn-Knopp targets)
scaled down for CPU minutes: separate DINO and iBOT heads, KoLeo 0.1 over groups of 32 images (the ViT-L/14
recipe's per-GPU batch), half the global crops masked 10-50% in blocks, AdamW at lr 0.004 x sqrt(batch / 1024),
weight decay 0.04 -> 0.4, gradients clipped to 3 per module, the patch embedding at 0.2 x the learning rate, the
heads' last layers at lr 0 for a tenth of the run, uniform drop path off (a 4-block ViT), the linear probe on the
class token and the mean patch token. Not the paper's: the heads (512-512-256 then 4,096 outputs instead of
2048-2048-384 and 131,072), a constant teacher temperature of 0.04 (as configs/ibot.py and configs/dino.py,
which found the 0.04 -> 0.07 warm-up too slow for a few epochs), EMA 0.99 -> 1, the schedule (5 epochs, 1 of
warm-up).
"""

from jaxssl import defaults
from jaxssl.methods import dinov2


def get_config():
  config = defaults.get_config("dinov2")      # micro ViT, AdamW with DINOv2's rules, clipping and schedules
  m = config.method
  m.proj_hidden_dims, m.out_dim, m.patch_out_dim = (512, 512), 4096, 4096
  m.bottleneck_dim = m.patch_bottleneck_dim = 256
  m.teacher_temperature = 0.04
  m.teacher_temperature_warmup_steps = 117    # no-op at 0.04
  m.base_momentum = 0.99
  m.group_size = 32
  config.model.pool = "cls_mean"
  config.train.num_epochs = 5.0
  config.optim.warmup_epochs = 1.0
  config.optim.rules = dinov2.freeze_last_layers(117) + (("encoder/patch_embed/.*", 0.2),)
  a = config.augment
  a.crop_scale, a.num_local_crops, a.local_size, a.local_crop_scale = (0.32, 1.0), 4, 12, (0.05, 0.32)
  return config
