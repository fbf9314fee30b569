"""simmim on Fashion-MNIST with the micro ViT.

    python -m jaxssl.main --config configs/simmim.py --workdir runs/simmim

The official masking and loss on 28 px images in 4 px patches: the masked squares are single patches (the
official 32 px squares are 2 x 2 patches of a ViT/16; 28 px has no such tiling), 60% of them; AdamW at the
official lr per image, 5 epochs as configs/mae.py.
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("simmim")
  config.train.num_epochs = 5
  config.optim.warmup_epochs = 1.0
  config.eval.linear_probe = True
  return config
