"""The config and its defaults: Fashion-MNIST (28x28x1) with the small ResNet, sized for a few minutes on 2 CPU
cores, and the presets config files share.

Every field a run reads is declared in ``jaxssl.schema.fields`` (validation refuses keys it does not know);
method configs in configs/ start from ``get_config(method)`` and override what differs.
"""

import ml_collections

from jaxssl import tasks
from jaxssl.schema import fields


def get_config(method: str) -> ml_collections.ConfigDict:
  """The config of ``method`` (a method or task name) at its defaults: the seed, the method's own section
  (its module's ``defaults()``), the shared sections as ``jaxssl.schema.fields`` declares them, then what the
  method sets in them (its ``config_defaults()``: MAE needs a ViT and AdamW)."""
  config = ml_collections.ConfigDict()
  config.seed = fields.SEED.default
  config.method = ml_collections.ConfigDict({"name": method, **tasks.defaults(method)})
  for section in fields.SECTIONS:
    config[section] = fields.section_defaults(section)
  return override(config, tasks.config_defaults(method))


def override(config: ml_collections.ConfigDict, dotted: dict) -> ml_collections.ConfigDict:
  """``config`` with each ``{"section.field": value}`` set (in place), e.g. a method's ``small`` overrides."""
  for field, value in dotted.items():
    section, key = field.split(".")
    config[section][key] = value
  return config


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_DATA = ("imagenet2012", "imagenette", "folder")


def imagenet(config: ml_collections.ConfigDict, data: str = "imagenet2012", batch_size: int = 4096,
             encoder: str = "resnet50", patch_size: int = 16) -> ml_collections.ConfigDict:
  """``config`` set up for ImageNet-style training: ``encoder`` (ResNet-50 with the ImageNet stem, or a ViT cut
  into ``patch_size`` patches) in bfloat16 at 224 px, random
  resized crops of the full images on the host, 10 warm-up epochs, evaluation (kNN and the online probe) at
  the end only. ``data`` picks the images:

  - ``imagenet2012``: TFDS's ImageNet (manual download; ``python -m jaxssl.data.prepare imagenet2012
    --data_dir DIR`` after placing the archives as TFDS asks), at the paper's ``batch_size``;
  - ``imagenette``: TFDS's ``imagenette/full-size-v2`` (10 classes, 9,469 images), batch 256;
  - ``folder``: ``data.data_dir/train/CLASS/*.jpg`` and ``data.data_dir/validation/CLASS/*.jpg``, batch 256.
  """
  if data not in IMAGENET_DATA:
    raise ValueError(f"config argument {data!r}: use one of {', '.join(IMAGENET_DATA)}")
  config.model.encoder, config.model.compute_dtype = encoder, "bfloat16"
  if encoder.startswith("vit"):
    config.model.patch_size = patch_size
  else:
    config.model.stem = "imagenet"
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
