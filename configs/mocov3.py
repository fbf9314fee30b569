"""mocov3 on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/mocov3.py --workdir runs/mocov3
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("mocov3")
  config.method.proj_hidden_dims = (1024, 1024)   # the paper's 4096 wide heads are slow on CPU
  config.method.pred_hidden_dims = (1024,)
  return config
