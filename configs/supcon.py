"""supcon on Fashion-MNIST with the small ResNet (uses the labels: a supervised baseline, not SSL).

    python -m jaxssl.main --config configs/supcon.py --workdir runs/supcon
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("supcon")
  return config
