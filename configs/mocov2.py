"""mocov2 on Fashion-MNIST with the small ResNet.

    python -m jaxssl.main --config configs/mocov2.py --workdir runs/mocov2

The official recipe (jaxssl/methods/mocov2.py) but for what a one-epoch run of 28 px images needs: a queue of
8,192 keys (35 batches; 65,536 would be more than the whole epoch's keys), momentum 0.99 (at 0.999 the key
encoder would move for only a few hundred steps), and no blur (SimCLR blurs no 32 px CIFAR image either).
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("mocov2")
  config.method.queue_size = 8192
  config.method.momentum = 0.99
  config.method.proj_hidden_dims = (512,)         # the small ResNet's width
  config.augment.blur_prob = 0.0
  return config
