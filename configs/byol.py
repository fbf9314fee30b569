"""byol on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/byol.py --workdir runs/byol
"""

from configs import common


def get_config():
  config = common.get_config("byol")
  return config
