"""LeJEPA on ImageNet, the authors' recipe (rbalestr-lab/lejepa's README, "GOTO hyperparameters"; Balestriero
and LeCun 2025, arXiv:2511.08544): a ViT in bfloat16 (ViT-S/14 here; the README's table trains ViT-L for 100
epochs), 14 px patches so that the 98 px local views are 7 x 7 patches; 2 global views at 224 px (crops of
30-100%) and 6 local views at 98 px (5-30%), colour jitter (0.4, 0.4, 0.2, 0.1), grayscale, blur 0.5,
solarisation 0.2; AdamW lr 5e-4, weight decay 5e-2 (ViTs), 10 warm-up epochs then a cosine to lr / 1000; lam
0.05, SIGReg on 1,024 directions, 100 epochs.

    python -m jaxssl.main --config configs/lejepa_imagenet.py --workdir gs://BUCKET/runs/lejepa_in1k
    python -m jaxssl.main --config configs/lejepa_imagenet.py:imagenette --workdir runs/lejepa_imagenette
    python -m jaxssl.main --config configs/lejepa_imagenet.py:folder --config.data.data_dir=DIR --workdir ...

The argument after ``:`` picks the data (``jaxssl.schema.defaults.imagenet``): ``imagenet2012`` (default; TFDS,
manual download), ``imagenette`` (TFDS), or ``folder`` (DIR/train/CLASS/*.jpg and DIR/validation/CLASS/*.jpg).
The batch (1,024 on ImageNet) is not in the repository's README; the learning rate scales with it.
"""

from jaxssl import defaults


def get_config(data: str = "imagenet2012"):
  config = defaults.imagenet(defaults.get_config("lejepa"), data, batch_size=1024, encoder="vit_small",
                             patch_size=14)
  config.model.pool = "cls"
  config.optim.weight_decay, config.optim.min_lr = 5e-2, 5e-7 * 1024 / 256
  config.augment.num_local_crops, config.augment.local_size = 6, 98
  config.train.num_epochs = 100
  return config
