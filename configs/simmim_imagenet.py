"""SimMIM on ImageNet, the official ViT-B recipe (microsoft/SimMIM,
``configs/vit_base__800ep/simmim_pretrain__vit_base__img224__800ep.yaml`` over ``config.py``'s defaults; Xie et
al. 2022, arXiv:2111.09886): ViT-B/16 at 224 px in bfloat16, 60% of the 32 px squares masked, LayerScale 0.1,
drop path 0.1, AdamW lr 1e-4 x batch / 512 with betas (0.9, 0.999), weight decay 0.05, gradients clipped to norm
5, 10 warm-up epochs, 800 epochs, crops of 67-100% and a flip; batch 2,048, the paper's for ImageNet-1K.

    python -m jaxssl.main --config configs/simmim_imagenet.py --workdir gs://BUCKET/runs/simmim_in1k
    python -m jaxssl.main --config configs/simmim_imagenet.py:imagenette --workdir runs/simmim_imagenette
    python -m jaxssl.main --config configs/simmim_imagenet.py:folder --config.data.data_dir=DIR --workdir ...

The argument after ``:`` picks the data (``jaxssl.schema.defaults.imagenet``). Departures from the official ViT
(jaxssl/methods/simmim.py): learned absolute positions in place of the shared relative position bias, a cosine
in place of the step at epoch 700.
"""

from jaxssl import defaults


def get_config(data: str = "imagenet2012"):
  config = defaults.imagenet(defaults.get_config("simmim"), data, batch_size=2048, encoder="vit_base",
                             patch_size=16)
  config.method.mask_patch_size = 32
  config.optim.min_lr = 5e-6 * 2048 / 512           # the official minimum, scaled with the batch as its lr
  config.model.pool = "cls"
  config.train.num_epochs = 800
  return config
