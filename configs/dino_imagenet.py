"""DINO with ViT-S/16 on ImageNet, the official recipe (Caron et al. 2021, arXiv:2104.14294; the repository's
ViT-S/16 100-epoch settings): batch 1024, AdamW lr 0.0005 x batch / 256 with 10 warm-up epochs then a cosine to
1e-6, weight decay 0.04 raised to 0.4 by a cosine, each parameter's gradient clipped to norm 3.0
(``utils.clip_gradients``), 100 epochs, head 2048-2048-256 then 65,536 outputs, teacher temperature
0.04 -> 0.07 over 30 epochs, teacher momentum 0.996 -> 1, last layer frozen for the first epoch (a rule of
``optim.rules``; skipped as the official AdamW skips it: no moments, no weight decay, and its own Adam step count
from the second epoch), multi-crop 2 x 224 (scale 0.4-1) + 8 x 96 (0.05-0.4), BYOL's augmentation for the global
crops. Crops of the full image on the host, resized bicubically as the official ``RandomResizedCrop``s.

    python -m jaxssl.main --config configs/dino_imagenet.py --workdir gs://BUCKET/runs/dino_in1k
    python -m jaxssl.main --config configs/dino_imagenet.py:imagenette --workdir runs/dino_imagenette

Its counts in epochs are of the data the run is given (``jaxssl.schema.schedules.in_steps``). The
argument after ``:`` picks the data: ``imagenet2012`` (default), ``imagenette`` or ``folder``
(``jaxssl.schema.defaults.imagenet``). Not reproduced from the official code: the ViT's stochastic depth (0.1; the
joint-embedding methods do not hand the encoder drop-path keys).
"""

from jaxssl import defaults
from jaxssl.schema import presets


def get_config(data: str = "imagenet2012"):
  config = presets.vit_small_imagenet(defaults.imagenet(defaults.get_config("dino"), data, batch_size=1024,
                                                          encoder="vit_small"))
  m = config.method
  m.warmup_teacher_temperature, m.teacher_temperature = 0.04, 0.07
  m.base_momentum = 0.996
  a = config.augment
  a.crop_scale, a.num_local_crops, a.local_size, a.local_crop_scale = (0.4, 1.0), 8, 96, (0.05, 0.4)
  a.blur_probs, a.solarize_probs = (1.0, 0.1), (0.0, 0.2)
  a.interpolation = "bicubic"
  return config
