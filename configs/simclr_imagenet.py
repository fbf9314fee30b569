"""SimCLR on ImageNet, the paper's recipe (Chen et al. 2020, arXiv:2002.05709, appendix B.1 and B.9): ResNet-50
at 224 px, batch 4096, LARS lr 0.3 x batch / 256 (4.8), weight decay 1e-6, 10 warm-up epochs then cosine, 100
epochs (the paper's ablation length; it also reports 200-1000), temperature 0.1, projector 2048-128, colour
jitter strength 1.0 and Gaussian blur with probability 0.5. Random resized crops of the full image on the host.

    python -m jaxssl.main --config configs/simclr_imagenet.py --workdir gs://BUCKET/runs/simclr_in1k
    python -m jaxssl.main --config configs/simclr_imagenet.py:imagenette --workdir runs/simclr_imagenette
    python -m jaxssl.main --config configs/simclr_imagenet.py:folder --config.data.data_dir=DIR --workdir ...

The argument after ``:`` picks the data (``jaxssl.schema.defaults.imagenet``): ``imagenet2012`` (default; TFDS, manual
download), ``imagenette`` (TFDS), or ``folder`` (DIR/train/CLASS/*.jpg and DIR/validation/CLASS/*.jpg).
"""

from jaxssl import defaults


def get_config(data: str = "imagenet2012"):
  config = defaults.imagenet(defaults.get_config("simclr"), data, batch_size=4096)
  config.optim.base_lr, config.optim.weight_decay = 0.3, 1e-6
  config.train.num_epochs = 100
  config.augment.jitter_strength = 1.0
  config.augment.blur_prob = 0.5
  return config
