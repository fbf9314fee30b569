"""byol on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/byol.py --workdir runs/byol
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("byol")
  # One-epoch runs: the paper's tau 0.996 leaves the target nearly random for 234 steps; solo-learn's CIFAR
  # settings (tau 0.99, LARS lr 1.0) did best of those tried (BENCHMARKS.md).
  config.method.base_momentum = 0.99
  config.optim.base_lr = 1.0
  return config
