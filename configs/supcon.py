"""supcon on Fashion-MNIST with the small ResNet (uses the labels: a supervised baseline, not SSL).

    python -m jaxssl.main --config configs/supcon.py --workdir runs/supcon
"""

from configs import common


def get_config():
  config = common.get_config("supcon")
  return config
