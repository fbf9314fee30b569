"""MoCo v2 on ImageNet, the paper's recipe (Chen et al. 2020, arXiv:2003.04297; the official main_moco.py with
``--mlp --moco-t 0.2 --aug-plus --cos``): ResNet-50 at 224 px, batch 256, SGD with momentum 0.9, lr 0.03,
weight decay 1e-4, a cosine with no warm-up, 200 epochs, a queue of 65,536 keys, temperature 0.2, momentum
0.999, the MLP head 2048-128, crops of 20-100%, colour jitter (0.4, 0.4, 0.4, 0.1) and blur with probability 0.5.

    python -m jaxssl.main --config configs/mocov2_imagenet.py --workdir gs://BUCKET/runs/mocov2_in1k
    python -m jaxssl.main --config configs/mocov2_imagenet.py:imagenette --workdir runs/mocov2_imagenette
    python -m jaxssl.main --config configs/mocov2_imagenet.py:folder --config.data.data_dir=DIR --workdir ...

The argument after ``:`` picks the data (``jaxssl.schema.defaults.imagenet``): ``imagenet2012`` (default; TFDS,
manual download), ``imagenette`` (TFDS), or ``folder`` (DIR/train/CLASS/*.jpg and DIR/validation/CLASS/*.jpg).
"""

from jaxssl import defaults


def get_config(data: str = "imagenet2012"):
  config = defaults.imagenet(defaults.get_config("mocov2"), data, batch_size=256)
  config.optim.warmup_epochs, config.optim.warmup_steps = 0.0, 0       # the official cosine starts at its peak
  config.train.num_epochs = 200
  return config
