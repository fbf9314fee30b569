"""nnclr on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/nnclr.py --workdir runs/nnclr
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("nnclr")
  config.method.queue_size = 8192                 # a multiple of the batch; 98,304 is for ImageNet
  config.method.proj_hidden_dims = (1024, 1024)   # narrower heads for CPU runs
  config.method.pred_hidden_dims = (1024,)
  return config
