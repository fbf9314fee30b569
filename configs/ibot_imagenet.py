"""iBOT with ViT-S/16 on ImageNet, the official ViT-S/16 recipe (Zhou et al. 2022, arXiv:2111.07832; the
repository's command for it): batch 1024, AdamW lr 0.0005 x batch / 256 with 10 warm-up epochs then a cosine to
1e-6, weight decay 0.04 -> 0.4, per-parameter clipping at 3, drop path 0.1, one head shared by the class and
patch tokens (2048-2048-256, then 8,192 outputs), teacher temperatures 0.04 -> 0.07 over 30 epochs, teacher
momentum 0.996 -> 1, the last layer frozen for the first epoch, multi-crop 2 x 224 (scale 0.25-1) + 10 x 96
(0.05-0.25), resized bicubically (DINO's transforms), half the global crops unmasked and the others masked 10-50%
in blocks. 100 epochs (lightly's ImageNet table; the paper's ViT-S/16 runs 800).

    python -m jaxssl.main --config configs/ibot_imagenet.py --workdir gs://BUCKET/runs/ibot_in1k
    python -m jaxssl.main --config configs/ibot_imagenet.py:imagenette --workdir runs/ibot_imagenette

Its counts in epochs are of the data the run is given (``jaxssl.schema.schedules.in_steps``). The
argument after ``:`` picks the data (``jaxssl.schema.defaults.imagenet``). Not reproduced: the official head's
unnormalised last layer (``--norm_last_layer false``; jaxssl's DINO head is always weight-normalised). DINOv2's
options: ``--config.method.centering=sinkhorn --config.method.koleo_weight=0.1
--config.method.shared_head=False``.
"""

from jaxssl import defaults
from jaxssl.methods import ibot
from jaxssl.schema import presets


def get_config(data: str = "imagenet2012"):
  config = defaults.imagenet(defaults.get_config("ibot"), data, batch_size=1024, encoder="vit_small")
  config = presets.vit_small_imagenet(config, freeze=ibot.freeze_last_layers)   # DINO's ViT-S/16 optimizer
  config.model.drop_path_rate = 0.1
  a = config.augment
  a.crop_scale, a.num_local_crops, a.local_size, a.local_crop_scale = (0.25, 1.0), 10, 96, (0.05, 0.25)
  a.blur_probs, a.solarize_probs = (1.0, 0.1), (0.0, 0.2)
  a.interpolation = "bicubic"
  return config
