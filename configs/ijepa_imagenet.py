"""I-JEPA with ViT-H/14 on ImageNet, the official recipe (Assran et al. 2023, arXiv:2301.08243;
configs/in1k_vith14_ep300.yaml): batch 2048, AdamW lr 1e-3 (1.25e-4 x batch / 256) after 40 warm-up epochs
then a cosine to 1e-6, weight decay 0.04 -> 0.4, 300 epochs, bfloat16, crops of scale (0.3, 1) at 224 px and no
other augmentation, 4 target blocks (scale 0.15-0.2, aspect 0.75-1.5) and a context block (scale 0.85-1),
blocks of more than 10 patches, a predictor 384 wide and 12 deep with the encoder's 16 heads, EMA 0.996 -> 1
linearly, evaluation on the mean patch token. ``:base`` trains ViT-B/16 with a predictor 384 wide and 6 deep with 12 heads (the official code
has no ViT-B recipe; the depth is jaxssl's choice).

    python -m jaxssl.main --config configs/ijepa_imagenet.py --workdir gs://BUCKET/runs/ijepa_in1k
    python -m jaxssl.main --config configs/ijepa_imagenet.py:base,imagenette --workdir runs/ijepa_imagenette

The argument after ``:`` is the size (``huge`` by default, ``base``), the data (``imagenet2012`` by default,
``imagenette`` or ``folder``, ``jaxssl.schema.defaults.imagenet``), or both. Not reproduced: the warm-up starts at 0
(official: at 1e-4), each context keeps up to the same number of patches over the whole run (68 of 256, the
median of the official batches' cut, where the official collator cuts each batch of 128 to its smallest: 43-93),
jaxssl's ViT carries a class token nothing reads, and the predictor's residual projections are not rescaled by depth at
initialisation.
"""

from jaxssl import defaults

SIZES = {"huge": ("vit_huge", 14, 12, 16), "base": ("vit_base", 16, 6, 12)}


def get_config(arg: str = ""):
  size, data = defaults.size_and_data(arg, SIZES, default_size="huge")
  encoder, patch, depth, heads = SIZES[size]
  config = defaults.imagenet(defaults.get_config("ijepa"), data, batch_size=2048, encoder=encoder, patch_size=patch)
  config.model.pos_embed, config.model.pool = "sincos", "mean"
  m = config.method
  m.predictor_dim, m.predictor_depth, m.predictor_heads = 384, depth, heads
  m.min_keep = 10                                 # the official configs' (the Fashion-MNIST default is 4)
  config.augment.crop_scale = (0.3, 1.0)
  o = config.optim
  o.name, o.base_lr, o.min_lr, o.weight_decay, o.weight_decay_end = "adamw", 1.25e-4, 1e-6, 0.04, 0.4
  o.warmup_epochs = 40.0
  config.train.num_epochs = 300
  config.eval.online_probe = False
  return config
