"""Fine-tuning a pretrained ViT on Fashion-MNIST, MAE's recipe (He et al. 2022, arXiv:2111.06377; the official
``main_finetune.py`` and FINETUNE.md for ViT-B) scaled to the micro ViT: AdamW (0.9, 0.999), lr 5e-4 x batch /
256 after 5 warm-up epochs (here 1) and a cosine to 1e-6, weight decay 0.05 (none on biases, norms, the class
token and position embeddings: the official ``no_weight_decay`` list), layer-wise lr decay 0.65, drop path 0.1,
label smoothing 0.1, mixup 0.8 and cutmix 1.0, RandAugment rand-m9-mstd0.5-inc1 (2 operations, magnitude 9,
std 0.5), random erasing 0.25, global pooling (``model.pool="global"``: the mean of the last block's patch
tokens, then a LayerNorm of its own, ``fc_norm``, which starts afresh while the pretrained final norm is left
out, as ``models_vit.py`` and ``main_finetune.py`` do).

    python -m jaxssl.finetune --config configs/finetune_vit.py --pretrained runs/mae --workdir runs/mae_ft
    python -m jaxssl.finetune --config configs/finetune_vit.py --pretrained runs/mae --from scratch \\
        --workdir runs/mae_scratch

Not reproduced: the official bicubic interpolation (timm's ``create_transform(interpolation="bicubic")``) of the crops
and RandAugment's warps: Fashion-MNIST is cropped and RandAugmented on the device, which warps bilinearly.
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("classifier")
  config.model.encoder, config.model.patch_size, config.model.pool = "vit_micro", 4, "global"
  config.model.drop_path_rate = 0.1
  config.augment.randaugment_layers = 2          # magnitude 9, std 0.5: the schema's defaults
  o = config.optim
  o.name, o.b1, o.b2, o.base_lr, o.min_lr, o.weight_decay = "adamw", 0.9, 0.999, 5e-4, 1e-6, 0.05
  o.layer_decay = 0.65
  o.rules = ((r"encoder/(cls_token|pos_embed)", 1.0, 0.0),)
  o.warmup_epochs = 1.0
  config.train.num_epochs = 5.0
  config.train.checkpoint_every = 200
  return config
