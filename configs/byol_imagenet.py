"""BYOL on ImageNet, the paper's recipe (Grill et al. 2020, arXiv:2006.07733, appendix C): ResNet-50 at 224 px,
batch 4096, LARS lr 0.2 x batch / 256 (3.2), weight decay 1.5e-6, 10 warm-up epochs then cosine, 300 epochs
(the paper's main results use 1000), target momentum 0.996 -> 1 (cosine), projector and predictor 4096-256,
the asymmetric augmentation pair (blur 1.0 / 0.1, solarize 0 / 0.2). Random resized crops of the full image on
the host.

    python -m jaxssl.main --config configs/byol_imagenet.py --workdir gs://BUCKET/runs/byol_in1k
    python -m jaxssl.main --config configs/byol_imagenet.py:imagenette --workdir runs/byol_imagenette

The argument after ``:`` picks the data: ``imagenet2012`` (default), ``imagenette`` or ``folder``
(``jaxssl.schema.defaults.imagenet``).
"""

from jaxssl import defaults


def get_config(data: str = "imagenet2012"):
  config = defaults.imagenet(defaults.get_config("byol"), data, batch_size=4096)
  config.optim.base_lr, config.optim.weight_decay = 0.2, 1.5e-6
  config.train.num_epochs = 300
  config.method.base_momentum = 0.996
  config.augment.blur_probs, config.augment.solarize_probs = (1.0, 0.1), (0.0, 0.2)
  return config
