"""simclr on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/simclr.py --workdir runs/simclr
"""

from configs import common


def get_config():
  config = common.get_config("simclr")
  return config
