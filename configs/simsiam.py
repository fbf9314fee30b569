"""simsiam on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/simsiam.py --workdir runs/simsiam
"""

from configs import common


def get_config():
  config = common.get_config("simsiam")
  # The paper's optimizer: SGD, lr 0.05 x batch / 256, weight decay 1e-4, momentum 0.9, cosine.
  config.optim.name = "sgd"
  config.optim.base_lr = 0.05
  config.optim.weight_decay = 1e-4
  return config
