"""vicreg on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/vicreg.py --workdir runs/vicreg
"""

from configs import common


def get_config():
  config = common.get_config("vicreg")
  return config
