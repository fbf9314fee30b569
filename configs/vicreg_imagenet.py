"""VICReg on ImageNet, the paper's recipe (Bardes et al. 2022, arXiv:2105.04906, section 4.1 and appendix C):
ResNet-50 at 224 px, batch 2048, LARS lr 0.2 x batch / 256 (1.6), weight decay 1e-6, 10 warm-up epochs then
cosine, 1000 epochs (its ablations use 100), expander 8192-8192-8192, coefficients 25 / 25 / 1, BYOL's
augmentation pair. Random resized crops of the full image on the host.

    python -m jaxssl.main --config configs/vicreg_imagenet.py --workdir gs://BUCKET/runs/vicreg_in1k
    python -m jaxssl.main --config configs/vicreg_imagenet.py:imagenette --workdir runs/vicreg_imagenette

The argument after ``:`` picks the data: ``imagenet2012`` (default), ``imagenette`` or ``folder``
(``jaxssl.schema.defaults.imagenet``).
"""

from jaxssl import defaults


def get_config(data: str = "imagenet2012"):
  config = defaults.imagenet(defaults.get_config("vicreg"), data, batch_size=2048)
  config.optim.base_lr, config.optim.weight_decay = 0.2, 1e-6
  config.train.num_epochs = 1000
  config.augment.blur_probs, config.augment.solarize_probs = (1.0, 0.1), (0.0, 0.2)
  return config
