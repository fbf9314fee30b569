"""barlow_twins on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/barlow_twins.py --workdir runs/barlow_twins
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("barlow_twins")
  # The official 8192-wide projector costs ~10 s a step on 2 CPU cores; 2048 keeps the run to minutes.
  config.method.proj_hidden_dims = (2048, 2048)
  config.method.proj_dim = 2048
  config.optim.weight_decay = 1.5e-6
  return config
