"""MSN with ViT-S/16 on ImageNet, the official recipe (Assran et al. 2022, arXiv:2204.07141;
``configs/pretrain/msn_vits16.yaml``): batch 1,024 (16 GPUs x 64), AdamW at lr 0.001 warmed up from 0.0002 over
15 epochs, then a cosine to 1e-6 over 1.25 x the run, weight decay 0.04 -> 0.4 over the same, the encoder's
gradients clipped to 3, no drop path, head 2048-2048 with BatchNorm then 256, 1,024 prototypes, temperature 0.1,
targets sharpened at 0.25 with 3 Sinkhorn-Knopp iterations, me-max weight 1, 15% of the anchor's patches dropped
(one draw per GPU batch of 64), EMA 0.996 -> 1 over 1.25 x the run, one 224 px anchor view (scale 0.3-1) and 10
focal views of 96 px (0.05-0.3), colour distortion at strength 0.5 and blur 0.5, 800 epochs.

    python -m jaxssl.main --config configs/msn_imagenet.py --workdir gs://BUCKET/runs/msn_in1k
    python -m jaxssl.main --config configs/msn_imagenet.py:imagenette --workdir runs/msn_imagenette

Its counts in epochs are of the data the run is given. With imagenette or a folder the batch is 256 and the
patch-drop groups 32 images.
PMSN: ``--config.method.prior=power_law``.
"""

from jaxssl import defaults


def get_config(data: str = "imagenet2012"):
  config = defaults.imagenet(defaults.get_config("msn"), data, batch_size=1024, encoder="vit_small")
  m, o, a = config.method, config.optim, config.augment
  m.group_size = 64 if data == "imagenet2012" else 32        # whole groups on 8 devices at batch 256
  config.train.num_epochs = 800.0
  o.warmup_epochs = 15.0
  a.crop_scale, a.num_local_crops, a.local_size, a.local_crop_scale = (0.3, 1.0), 10, 96, (0.05, 0.3)
  return config
