"""MAE with ViT-B/16 on ImageNet, the official recipe (He et al. 2022, arXiv:2111.06377; main_pretrain.py and
PRETRAIN.md): batch 4096, AdamW (betas 0.9, 0.95) lr 1.5e-4 x batch / 256, weight decay 0.05 (not on biases and
norms), 40 warm-up epochs then cosine, 800 epochs, mask ratio 0.75, per-patch normalised targets, decoder 512
wide with 8 blocks and 16 heads, fixed sine-cosine positions, MAE's initialisation; crops of scale (0.2, 1)
(resized bicubically, the official ``interpolation=3``) and flips only, taken from the full image on the host. ``:large`` trains ViT-L/16 (the paper's main model).

    python -m jaxssl.main --config configs/mae_imagenet.py --workdir gs://BUCKET/runs/mae_in1k
    python -m jaxssl.main --config configs/mae_imagenet.py:large --workdir gs://BUCKET/runs/mae_large_in1k
    python -m jaxssl.main --config configs/mae_imagenet.py:imagenette --workdir runs/mae_imagenette

The argument after ``:`` is the size (``base`` by default, ``large``), the data (``imagenet2012`` by default,
``imagenette`` or ``folder``, ``jaxssl.schema.defaults.imagenet``), or both (``large,imagenette``). Not reproduced
from the official code: the paper's figures
are fine-tuning and a linear probe with a BatchNorm before the head, while this run reports kNN at the end (the
online probe is off: the encoder sees a quarter of the patches).
"""

from jaxssl import defaults

SIZES = {"base": "vit_base", "large": "vit_large"}


def get_config(arg: str = ""):
  size, data = defaults.size_and_data(arg, SIZES)
  config = defaults.imagenet(defaults.get_config("mae"), data, batch_size=4096, encoder=SIZES[size])
  config.model.pos_embed, config.model.weight_init = "sincos", "mae"
  config.augment.crop_scale = (0.2, 1.0)
  config.augment.interpolation = "bicubic"
  o = config.optim
  o.name, o.base_lr, o.weight_decay, o.b1, o.b2 = "adamw", 1.5e-4, 0.05, 0.9, 0.95
  o.warmup_epochs = 40.0
  config.train.num_epochs = 800
  config.eval.online_probe = False
  return config
