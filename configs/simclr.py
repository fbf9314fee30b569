"""simclr on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/simclr.py --workdir runs/simclr
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("simclr")
  return config
