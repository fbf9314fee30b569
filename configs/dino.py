"""dino on Fashion-MNIST with the small ResNet, multi-crop 2 x 28 + 4 x 14.

    python -m jaxssl.main --config configs/dino.py --workdir runs/dino
"""

from configs import common


def get_config():
  config = common.get_config("dino")
  m = config.method
  m.proj_hidden_dims = (512, 512)                 # narrower than 2048 for CPU runs
  m.out_dim = 4096
  m.teacher_temperature_warmup_steps = 117        # half the one-epoch run, instead of 30 ImageNet epochs
  m.base_momentum = 0.99
  m.freeze_last_layer_steps = 23                  # a tenth of the run (official: the first of 100+ epochs)
  config.augment.crop_scale = (0.4, 1.0)          # official global crops (0.4, 1), local (0.05, 0.4)
  config.augment.num_local_crops = 4
  config.augment.local_size = 14
  config.augment.local_crop_scale = (0.05, 0.4)
  return config
