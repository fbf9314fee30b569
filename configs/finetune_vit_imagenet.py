"""Fine-tuning a pretrained ViT on ImageNet, MAE's recipe (He et al. 2022, arXiv:2111.06377; the official
``main_finetune.py`` and FINETUNE.md): batch 1024, AdamW (0.9, 0.999) lr 5e-4 x batch / 256 after 5 warm-up
epochs, cosine to 1e-6, weight decay 0.05 (none on biases, norms, class token and position embeddings),
layer-wise lr decay 0.65, drop path 0.1, 100 epochs for ViT-B/16; ``:large`` ViT-L/16 with lr 1e-3 x batch /
256, decay 0.75, drop path 0.2, 50 epochs; ``:huge`` ViT-H/14 with lr 1e-3 x batch / 256, decay 0.75, drop path
0.3, 50 epochs. Label smoothing 0.1, mixup 0.8, cutmix 1.0 (one lambda per batch, ``--mixup_mode batch``),
RandAugment rand-m9-mstd0.5-inc1, random erasing 0.25, global average pooling
(``model.pool="global"``: the mean patch token, then a fresh ``fc_norm`` in place of the final norm), head
initialised with std 2e-5; crops of the full image on the host, scale (0.08, 1), then the flip and RandAugment
in the host workers with PIL, as timm's transforms (``augment.randaugment_on="auto"``), all bicubic as timm's
``create_transform(interpolation="bicubic")`` in the official ``util/datasets.py``.

    python -m jaxssl.finetune --config configs/finetune_vit_imagenet.py --pretrained gs://BUCKET/runs/mae_in1k \\
        --workdir gs://BUCKET/runs/mae_in1k_ft

The argument after ``:`` is the size (``base`` by default, ``large``, ``huge``), the data (``imagenet2012`` by
default, ``imagenette`` or ``folder``), or both. RandAugment runs on the host because a host core is far
cheaper per image there than the device at 224 px on a CPU (benchmarks/speed/randaugment_cost.py);
``--config.augment.randaugment_on=device --config.augment.interpolation=bilinear`` moves it to the device,
whose warps are bilinear.
"""

from jaxssl import defaults

# (encoder, patch size, base lr (FINETUNE.md's --blr), layer decay, drop path, epochs)
SIZES = {"base": ("vit_base", 16, 5e-4, 0.65, 0.1, 100), "large": ("vit_large", 16, 1e-3, 0.75, 0.2, 50),
         "huge": ("vit_huge", 14, 1e-3, 0.75, 0.3, 50)}


def get_config(arg: str = ""):
  size, data = defaults.size_and_data(arg, SIZES)
  encoder, patch, base_lr, layer_decay, drop_path, epochs = SIZES[size]
  config = defaults.imagenet(defaults.get_config("classifier"), data, batch_size=1024, encoder=encoder,
                             patch_size=patch)
  config.model.pool = "global"
  config.model.drop_path_rate = drop_path
  config.method.num_classes = {"imagenet2012": 1000, "imagenette": 10}.get(data, 1000)
  config.augment.crop_scale = (0.08, 1.0)
  config.augment.randaugment_layers = 2
  config.augment.interpolation = "bicubic"
  o = config.optim
  o.name, o.b1, o.b2, o.base_lr, o.min_lr, o.weight_decay = "adamw", 0.9, 0.999, base_lr, 1e-6, 0.05
  o.layer_decay = layer_decay
  o.rules = ((r"encoder/(cls_token|pos_embed)", 1.0, 0.0),)
  o.warmup_epochs = 5.0
  config.train.num_epochs = epochs
  return config
