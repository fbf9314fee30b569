"""lejepa on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/lejepa.py --workdir runs/lejepa

The authors' small-data recipe (MINIMAL.md: 4 views of one kind, no local crops, lam 0.02, lr 2e-3) on 28 px
images; the projector 1024 wide (2048 is slow on CPU) and SIGReg on 256 directions (MINIMAL.md's).
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("lejepa")
  config.method.num_global_views = 4
  config.method.lam = 0.02
  config.method.num_slices = 256
  config.method.proj_hidden_dims = (1024, 1024)
  config.optim.base_lr, config.optim.min_lr = 2e-3, 2e-6
  return config
