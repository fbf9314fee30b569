"""iBOT on Fashion-MNIST with a micro ViT (4 blocks, 64 wide) on 4x4 patches: multi-crop 2 x 28 + 4 x 12.

    python -m jaxssl.main --config configs/ibot.py --workdir runs/ibot

The official recipe (main_ibot.py, its ViT-S/16 settings) scaled down for CPU minutes: one head for the class
and patch tokens, half the global crops unmasked and the others masked 10-50% in blocks, AdamW with weight
decay 0.04 -> 0.4, per-parameter gradient clipping at 3, the last layer frozen for a tenth of the run. Not the
paper's: the head (512-512-256 then 4,096 outputs instead of 2048-2048-256 and 8,192), a constant teacher
temperature of 0.04 for both token kinds (as configs/dino.py, which found the 0.04 -> 0.07 warm-up too slow
for a few epochs), the schedule (5 epochs, 1 of warm-up) and lr 1e-3 x batch / 256 (a short run of a small
model, as configs/mae.py).
"""

from jaxssl import defaults
from jaxssl.methods import ibot


def get_config():
  config = defaults.get_config("ibot")          # the micro ViT, AdamW, clipping, weight-decay schedule
  m = config.method
  m.proj_hidden_dims, m.out_dim, m.patch_out_dim = (512, 512), 4096, 4096
  m.teacher_temperature = m.teacher_patch_temperature = 0.04
  m.base_momentum = 0.99
  config.train.num_epochs = 5.0
  config.optim.base_lr = 1e-3
  config.optim.warmup_epochs = 1.0
  m.teacher_temperature_warmup_steps, m.teacher_temperature_hold_steps = 117, 1
  config.optim.rules = ibot.freeze_last_layers(117)   # half an epoch of 234 steps at batch 256
  a = config.augment
  a.crop_scale, a.num_local_crops, a.local_size, a.local_crop_scale = (0.4, 1.0), 4, 12, (0.05, 0.4)
  return config
