"""wmse on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/wmse.py --workdir runs/wmse
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("wmse")
  config.augment.crop_scale = (0.2, 1.0)
  config.optim.name = "adamw"                     # official: Adam, lr 3e-3 (x batch / 256 here), wd 1e-6
  config.optim.base_lr = 3e-3
  config.optim.weight_decay = 1e-6
  return config
