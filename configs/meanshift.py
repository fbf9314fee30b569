"""meanshift on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/meanshift.py --workdir runs/meanshift
"""

from configs import common


def get_config():
  config = common.get_config("meanshift")
  # The official recipe scaled to the small ResNet (feature 128): heads 256-32 as feature*2 / feature/4.
  config.method.proj_hidden_dims = (256,)
  config.method.proj_dim = 32
  config.method.pred_hidden_dims = (256,)
  config.method.bank_size = 8192                  # a multiple of the batch; 128,000 is for ImageNet
  config.augment.crop_scale = (0.2, 1.0)
  config.optim.name = "sgd"                       # official: SGD lr 0.05, weight decay 1e-4
  config.optim.base_lr = 0.05
  config.optim.weight_decay = 1e-4
  return config
