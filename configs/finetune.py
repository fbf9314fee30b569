"""Fine-tuning a pretrained ResNet on Fashion-MNIST, SimCLR's recipe (Chen et al. 2020, arXiv:2002.05709,
appendix B.5): SGD with Nesterov momentum 0.9, lr 0.05 x batch / 256 without warm-up (cosine decay), no
weight decay or other regularisation, random resized crops and flips only; a new linear head, cross-entropy.
The crops take 50-100% of the image: SimCLR's 8-100% is for ImageNet's large images, and on 28 px ones it leaves
a few pixels (the README's one-epoch VICReg encoder fine-tunes to 84.74% with 50-100%, a sibling of it to 81.56%
with 8-100%; BENCHMARKS.md).

    python -m jaxssl.finetune --config configs/finetune.py --pretrained runs/simclr --workdir runs/simclr_ft
    python -m jaxssl.finetune --config configs/finetune.py --pretrained runs/simclr --from scratch \\
        --workdir runs/simclr_scratch
    python -m jaxssl.finetune --config configs/finetune.py --pretrained runs/simclr --label_fraction 0.1 \\
        --config.train.num_epochs=10 --workdir runs/simclr_ft10

A recipe for ResNets: a pretrained ViT is refused (use configs/finetune_vit.py). The encoder's architecture
comes from the pretrained run. The paper fine-tunes 60 epochs on 1% of the labels
and 30 on 10%; at the CPU budget here, 2 epochs of the full train split (470 steps at batch 256); keep the
number of steps about the same for fewer labels (``--config.train.num_epochs``).
"""

from jaxssl import defaults


def get_config():
  config = defaults.get_config("classifier")
  m = config.method
  m.label_smoothing, m.mixup_alpha, m.cutmix_alpha, m.erase_prob, m.head_init_std = 0.0, 0.0, 0.0, 0.0, 0.0
  o = config.optim
  o.name, o.momentum, o.nesterov, o.base_lr, o.weight_decay = "sgd", 0.9, True, 0.05, 0.0
  o.warmup_steps = 0
  config.augment.crop_scale = (0.5, 1.0)
  config.train.num_epochs = 2.0
  config.train.checkpoint_every = 200
  return config
