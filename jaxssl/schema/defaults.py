"""The config schema and its defaults: Fashion-MNIST (28x28x1) with the small ResNet, sized for a few minutes
on 2 CPU cores.

Every field a run reads is here (validation refuses keys it does not know); method configs in configs/ start
from ``get_config(method)`` and override what differs.
"""

import ml_collections

from jaxssl import tasks


def get_config(method: str) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.method = ml_collections.ConfigDict({"name": method, **tasks.defaults(method)})

  config.model = ml_collections.ConfigDict()
  config.model.encoder = "small_resnet"          # small_resnet | resnet18 | resnet50 | vit_micro | vit_tiny |
                                                 # vit_small | vit_base | vit_large | vit_huge
  config.model.patch_size = 4                    # ViTs: 4 for 28-32 px images, 16 for ImageNet's 224 (14: ViT-H)
  config.model.pos_embed = "learned"             # ViTs: learned (DINO) | sincos (fixed 2-D sine-cosine, MAE)
  config.model.weight_init = "dino"              # ViTs: dino (truncated normal 0.02) | mae (xavier-uniform)
  config.model.qkv_bias = True                   # ViTs: biases on the query/key/value projection (timm, MAE)
  config.model.drop_path_rate = 0.0              # ViTs: stochastic depth at the last block (linear from 0)
  config.model.pool = "cls"                      # ViTs: evaluation features, cls (class token) | mean (patches) |
                                                 # global (fine-tuning: MAE's mean, then fc_norm)
  config.model.class_token = True                # ViTs: a class token (False: pool mean or global; I-JEPA, timm avg)
  config.model.num_registers = 0                 # ViTs: register tokens (DINOv2 with registers: 4)
  config.model.layer_scale = 0.0                 # ViTs: LayerScale's initial value (DINOv2: 1e-5); 0 for none
  config.model.mlp = "gelu"                      # ViTs: the blocks' feed-forward, gelu | swiglu (DINOv2's ViT-g)
  config.model.init_from = ""                    # weights the encoder starts from (a timm folder or weights file)
  config.model.init_from_arch = ""               # for a bare weights file: a timm architecture (gives the heads)
  config.model.remat = False                     # rematerialise each ViT / ResNet block in the backward pass
  config.model.scan_layers = False               # ViTs: the blocks as one nn.scan (compile time flat in depth)
  config.model.stem = "cifar"                    # cifar (3x3, no max-pool) | imagenet (7x7 + max-pool)
  config.model.compute_dtype = "float32"         # float32 | bfloat16
  config.model.zero_init_residual = False        # torchvision's default, as lightly and solo-learn
  config.model.conv = "auto"                     # ResNets: auto (cpu on the CPU backend, else xla) | xla | cpu
  config.model.padding = "same"                  # ResNets' 3x3 convolutions: same (Flax) | torch (torchvision's)

  config.data = ml_collections.ConfigDict()
  config.data.source = "tfds"                    # tfds | folder | numpy | idx | synthetic
  config.data.dataset = "fashion_mnist"          # a TFDS name (source tfds)
  config.data.data_dir = ""                      # TFDS data_dir ("" = TFDS's default), a folder, an .npz or IDX dir
  config.data.train_split = "train"              # pretraining split; may be unlabeled (STL-10's "unlabelled")
  config.data.eval_train_split = ""              # labeled split kNN / linear probe fit on ("" = train_split)
  config.data.test_split = "test"                # labeled split they are scored on ("" = no evaluation)
  config.data.image_size = 0                     # > 0: resize on the host (folders, mixed-size TFDS datasets)
  config.data.cache = True                       # read each split into memory once (small datasets)
  config.data.prefetch = 2                       # batches prepared ahead by the host thread
  config.data.crop_on = "auto"                   # auto | host | device (auto: host for folder, tfds + image_size)
  config.data.workers = 0                        # host-crop threads (0: one per available core)
  config.data.max_bad_images = 100               # unreadable images substituted (and listed) before the run stops
  config.data.read_timeout_s = 300.0             # a batch not read in this long stops the run (0: wait forever)
  config.data.label_fraction = 1.0               # < 1: a class-balanced share of the train split (SimCLR: 0.01, 0.1)
  config.data.label_seed = 0                     # which share (the same on any number of devices or processes)
  config.data.mean = (0.2860,)                   # per channel, after scaling to [0, 1]
  config.data.std = (0.3530,)
  config.data.synthetic_num_examples = 512
  config.data.synthetic_size = 28
  config.data.synthetic_channels = 1

  config.augment = ml_collections.ConfigDict()
  config.augment.size = 28
  config.augment.crop_scale = (0.08, 1.0)
  config.augment.jitter_strength = 1.0           # SimCLR recipe: jitter (0.8, 0.8, 0.8, 0.2) x strength
  config.augment.blur_prob = 0.0                 # SimCLR recipe; SimCLR uses no blur on 32x32 CIFAR either
  config.augment.blur_probs = (1.0, 0.1)         # BYOL / VICReg asymmetric pair
  config.augment.solarize_probs = (0.0, 0.2)
  config.augment.rotation_prob = 0.0             # every recipe: rotate by U(-degrees, degrees) with this prob
  config.augment.rotation_degrees = 15.0
  config.augment.interpolation = "bilinear"      # the crops' resize: bilinear | bicubic (DINO's, MAE's)
  config.augment.randaugment_layers = 0          # fine-tuning: RandAugment ops per image (MAE/DeiT: 2)
  config.augment.randaugment_magnitude = 9.0     # of 10 (timm's rand-m9-mstd0.5-inc1)
  config.augment.randaugment_magnitude_std = 0.5
  config.augment.randaugment_on = "auto"         # auto: with the crops (host or device, data.crop_on) | device
  config.augment.num_local_crops = 0             # multi-crop methods (SwAV, DINO): small crops beside 2 global
  config.augment.local_size = 12
  config.augment.local_crop_scale = (0.05, 0.14)

  config.optim = ml_collections.ConfigDict()
  config.optim.name = "lars"                     # lars | sgd | adamw
  config.optim.base_lr = 0.3                     # peak lr = base_lr * batch_size / 256
  config.optim.weight_decay = 1e-6
  config.optim.momentum = 0.9
  config.optim.nesterov = False                  # SGD: Nesterov momentum (SimCLR's fine-tuning)
  config.optim.b1 = 0.9                          # AdamW's betas (MAE: 0.9, 0.95)
  config.optim.b2 = 0.999
  config.optim.trust_coefficient = 0.001
  config.optim.warmup_steps = 10
  config.optim.warmup_epochs = 0.0               # > 0: warm-up in epochs of the train split (overrides steps)
  config.optim.min_lr = 0.0                      # the cosine's floor (DINO: 1e-6; MAE fine-tuning: 1e-6)
  config.optim.weight_decay_end = -1.0           # >= 0: cosine from weight_decay to this (DINO: 0.04 -> 0.4)
  config.optim.clip_grad_norm = 0.0              # > 0: clip gradients to this norm (DINO: 3.0)
  config.optim.clip_mode = "global"              # global (one norm, optax) | per_parameter (each leaf, DINO)
  config.optim.layer_decay = 1.0                 # < 1: ViT layer-wise lr decay (BEiT/MAE fine-tuning: 0.65-0.75)
  # (pattern, lr_mult, wd_mult, frozen_steps) on parameter paths ("encoder/block_0/attn/qkv/kernel"), first
  # full match wins, multiplying the defaults (no weight decay on 1-D parameters); jaxssl/ops/optim.py.
  config.optim.rules = ()

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 256                  # global, over all devices and hosts
  config.train.num_epochs = 1.0                  # may be fractional
  config.train.num_steps = -1                    # > 0 overrides num_epochs
  config.train.log_every = 10
  config.train.checkpoint_every = 500            # steps between checkpoints (0: only at the end and on SIGTERM)
  config.train.keep_checkpoints = 3
  config.train.grad_accum_steps = 1              # > 1: each device's share in that many micro-batches
  config.train.allow_coupled_accumulation = False   # also for losses / BN that couple the batch

  config.parallel = ml_collections.ConfigDict()
  config.parallel.fsdp = False                   # shard params, optimizer state, EMA target (jaxssl/engine/fsdp.py)
  config.parallel.fsdp_min_size = 2**14          # smaller arrays stay replicated under fsdp
  config.parallel.fsdp_per_block = True          # ViT blocks gather their own shards (False: all on entry)

  config.eval = ml_collections.ConfigDict()
  config.eval.evaluators = ("knn", "online_probe", "linear_probe")   # by name (jaxssl/evals/), in print order
  config.eval.knn_k = 200
  config.eval.knn_temperature = 0.1
  config.eval.knn_at_init = True                 # also report the random-init encoder (the baseline to beat)
  config.eval.batch_size = 1000
  config.eval.at_end = True                      # kNN (+ online probe) after training
  config.eval.every_epochs = 0.0                 # > 0: also evaluate every this many epochs during training
  config.eval.online_probe = True                # linear classifier on stop-gradient features, when labeled
  config.eval.online_probe_lr = 0.1
  config.eval.linear_probe = False               # offline linear probe after training (python -m jaxssl.evaluate)
  config.eval.linear_epochs = 30
  config.eval.linear_lr = 0.1
  config.eval.linear_batch_size = 256
  config.eval.linear_weight_decay = 0.0
  config.eval.linear_augment = False             # random resized crop + flip on the probe's training images
  return override(config, tasks.config_defaults(method))     # what the method needs elsewhere (MAE: a ViT)


def override(config: ml_collections.ConfigDict, dotted: dict) -> ml_collections.ConfigDict:
  """``config`` with each ``{"section.field": value}`` set (in place), e.g. a method's ``small`` overrides."""
  for field, value in dotted.items():
    section, key = field.split(".")
    config[section][key] = value
  return config


# Train-split sizes of the ImageNet presets' datasets: settings that the papers give in epochs and the config
# needs in steps (DINO's teacher-temperature warm-up, its frozen last layer) are computed from them.
TRAIN_EXAMPLES = {"imagenet2012": 1_281_167, "imagenette/full-size-v2": 9_469}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_DATA = ("imagenet2012", "imagenette", "folder")


def imagenet(config: ml_collections.ConfigDict, data: str = "imagenet2012",
             batch_size: int = 4096) -> ml_collections.ConfigDict:
  """``config`` set up for ImageNet-style training: ResNet-50 (ImageNet stem, bfloat16) at 224 px, random
  resized crops of the full images on the host, 10 warm-up epochs, evaluation (kNN and the online probe) at
  the end only. ``data`` picks the images:

  - ``imagenet2012``: TFDS's ImageNet (manual download; ``python -m jaxssl.data.prepare imagenet2012
    --data_dir DIR`` after placing the archives as TFDS asks), at the paper's ``batch_size``;
  - ``imagenette``: TFDS's ``imagenette/full-size-v2`` (10 classes, 9,469 images), batch 256;
  - ``folder``: ``data.data_dir/train/CLASS/*.jpg`` and ``data.data_dir/validation/CLASS/*.jpg``, batch 256.
  """
  if data not in IMAGENET_DATA:
    raise ValueError(f"config argument {data!r}: use one of {', '.join(IMAGENET_DATA)}")
  config.model.encoder, config.model.stem, config.model.compute_dtype = "resnet50", "imagenet", "bfloat16"
  d = config.data
  d.source = "folder" if data == "folder" else "tfds"
  d.dataset = {"imagenet2012": "imagenet2012", "imagenette": "imagenette/full-size-v2"}.get(data, "")
  d.train_split, d.eval_train_split, d.test_split = "train", "", "validation"
  d.image_size = 224                             # the evaluation's centre squares; training crops the originals
  d.crop_on, d.cache = "host", False
  d.mean, d.std = IMAGENET_MEAN, IMAGENET_STD
  config.augment.size = 224
  config.train.batch_size = batch_size if data == "imagenet2012" else 256
  config.train.log_every = 50
  config.optim.warmup_epochs = 10.0
  config.eval.knn_at_init = False                # a pass over the whole train split: an epoch's worth of time
  return config


def size_and_data(arg: str, sizes, default_size: str = "base") -> tuple[str, str]:
  """A ViT config's argument after ``:``: a model size (a key of ``sizes``), the data (``IMAGENET_DATA``) or
  both, comma-separated ("large,imagenette"); (size, data) with the defaults filled in."""
  parts = [p for p in arg.split(",") if p]
  unknown = [p for p in parts if p not in sizes and p not in IMAGENET_DATA]
  if unknown:
    raise ValueError(f"config argument {unknown[0]!r}: use a size ({', '.join(sizes)}) and/or data "
                     f"({', '.join(IMAGENET_DATA)})")
  return (next((p for p in parts if p in sizes), default_size),
          next((p for p in parts if p in IMAGENET_DATA), "imagenet2012"))


def steps_per_epoch(config: ml_collections.ConfigDict) -> int:
  """Steps per epoch of the preset's dataset at the config's batch (ImageNet's size for an image folder)."""
  examples = TRAIN_EXAMPLES.get(config.data.dataset, TRAIN_EXAMPLES["imagenet2012"])
  return max(1, examples // config.train.batch_size)
