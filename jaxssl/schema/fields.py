"""Every field of the shared config sections, declared once: its default, what it means, and the rule its value
must follow alone (``Rule``: one ConfigError line naming the field and the value). ``defaults.get_config``
builds the config from these tables, ``validate`` runs their rules before the rules across fields, and the
README's field table and ``python -m jaxssl.schema.fields`` are written from them.

A method's own section (``config.method``) is its module's ``defaults()`` and ``check(config)``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import ml_collections

from jaxssl import data, tasks
from jaxssl.common import config_checks, trackers
from jaxssl.common.config_checks import fail
from jaxssl.models import ENCODERS
from jaxssl.models.resnet import CONV_IMPLEMENTATIONS, PADDINGS
from jaxssl.models.vit import INITS, MLPS
from jaxssl.ops import optim
from jaxssl.ops.augment import INTERPOLATIONS
from jaxssl.tasks.classifier import RANDAUGMENT_PLACES

# (config, "section.field") -> None, or a ConfigError.
Rule = Callable[[ml_collections.ConfigDict, str], None]

POOLS = ("cls", "mean", "cls_mean", "global")


class Field(NamedTuple):
  """A config field: its ``default``, one line of ``help`` and the ``rule`` its value alone must follow (None:
  any value of the default's type, or checked only against other fields, in ``validate``); ``only``: the encoder
  family that reads it ("vit", "resnet"; "" for all), so that another encoder's run refuses it set and
  ``describe`` leaves it out."""
  default: Any
  help: str
  rule: Rule | None = None
  only: str = ""


def encoder_family(encoder: str) -> str:
  """"vit" or "resnet": which of the ``only`` fields an encoder reads."""
  return "vit" if encoder.startswith("vit") else "resnet"


def other_family_fields(config: ml_collections.ConfigDict) -> list[str]:
  """The ``model.*`` fields the config's encoder does not read (another family's)."""
  family = encoder_family(config.model.encoder)
  return [f"model.{name}" for name, f in MODEL.items() if f.only and f.only != family]


# -- rules ---------------------------------------------------------------------------------------------------------


def one_of(choices, why: str = "") -> Rule:
  """The value is one of ``choices``; else ``why`` (default: "use one of 'a', 'b'")."""
  def rule(config, field):
    value = config_checks.get(config, field)
    if value not in choices:
      fail(field, value, why or f"use one of {', '.join(map(repr, choices))}")
  return rule


def either(choices) -> str:
  """"use 'a', 'b' or 'c'"."""
  names = [repr(c) for c in choices]
  return f"use {', '.join(names[:-1])} or {names[-1]}"


def test(ok: Callable[[Any], bool], why: str) -> Rule:
  """The value passes ``ok``; else ``why``."""
  def rule(config, field):
    value = config_checks.get(config, field)
    if not ok(value):
      fail(field, value, why)
  return rule


def boolean() -> Rule:
  return test(lambda v: isinstance(v, bool), "must be True or False")


def positive(why: str = "must be positive") -> Rule:
  return test(lambda v: v > 0, why)


def non_negative(why: str = "must be non-negative") -> Rule:
  return test(lambda v: v >= 0, why)


def _int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def positive_int() -> Rule:
  return config_checks.positive_int


def non_negative_int(why: str = "must be a non-negative integer") -> Rule:
  return test(lambda v: _int(v) and v >= 0, why)


def in_range(low: float, high: float, closed_high: bool = True) -> Rule:
  return lambda config, field: config_checks.in_range(config, field, low, high, closed_high)


def probability() -> Rule:
  return config_checks.probability


def probabilities(length: int) -> Rule:
  return lambda config, field: config_checks.probabilities(config, field, length)


def ordered_pair(low: float, high: float, closed_low: bool = True) -> Rule:
  return lambda config, field: config_checks.ordered_pair(config, field, low, high, closed_low)


# -- the sections --------------------------------------------------------------------------------------------------

SEED = Field(0, "the run's seed: initialisation, data order, views, masks (the same on any number of devices)",
             test(lambda v: _int(v) and 0 <= v < 2**31, "must be an integer in [0, 2**31)"))

_CONVS = ("auto", *CONV_IMPLEMENTATIONS)

MODEL = {
    "encoder": Field("small_resnet", "small_resnet | resnet18 | resnet50 | vit_micro | vit_tiny | vit_small | "
                     "vit_base | vit_large | vit_huge | vit_giant",
                     one_of(ENCODERS, f"unknown encoder; known: {', '.join(sorted(ENCODERS))}")),
    "patch_size": Field(4, "ViTs: 4 for 28-32 px images, 16 for ImageNet's 224 (14: ViT-H); divides the crops",
                        only="vit"),
    "pos_embed": Field("learned", "ViTs: learned (DINO) | sincos (fixed 2-D sine-cosine, MAE) | rope (DINOv3's "
                       "rotary embedding; not with MAE or I-JEPA)", one_of(("learned", "sincos", "rope")), only="vit"),
    "weight_init": Field("dino", "ViTs: dino (truncated normal 0.02) | mae (xavier-uniform)", one_of(INITS),
                         only="vit"),
    "qkv_bias": Field(True, "ViTs: biases on the query/key/value projection (timm, MAE)", only="vit"),
    "drop_path_rate": Field(0.0, "ViTs: stochastic depth at the last block (linear from 0)",
                            in_range(0.0, 1.0, closed_high=False), only="vit"),
    "drop_path_uniform": Field(False, "ViTs: the same drop-path rate at every block (DINOv2)", boolean(),
                               only="vit"),
    "pool": Field("cls", "ViTs: evaluation features, cls (class token) | mean (patches) | cls_mean (both "
                  "concatenated: DINOv2's linear evaluation) | global (fine-tuning: MAE's mean, then fc_norm)",
                  one_of(POOLS), only="vit"),
    "class_token": Field(True, "ViTs: a class token (False: pool mean or global; I-JEPA, timm avg)", boolean(),
                         only="vit"),
    "num_registers": Field(0, "ViTs: register tokens (DINOv2 with registers: 4)", non_negative_int(), only="vit"),
    "layer_scale": Field(0.0, "ViTs: LayerScale's initial value (DINOv2: 1e-5); 0 for none", in_range(0.0, 10.0),
                         only="vit"),
    "mlp": Field("gelu", "ViTs: the blocks' feed-forward, gelu | swiglu (DINOv2's ViT-g; as wide as DINOv2's)", one_of(tuple(MLPS)),
                 only="vit"),
    "init_from": Field("", "weights the encoder starts from (a timm folder or weights file)"),
    "init_from_arch": Field("", "for a bare weights file: a timm architecture (gives the heads)"),
    "remat": Field(False, "rematerialise each ViT / ResNet block in the backward pass"),
    "scan_layers": Field(False, "ViTs: the blocks as one nn.scan (compile time flat in depth)", only="vit"),
    "stem": Field("cifar", "ResNets: cifar (3x3, no max-pool) | imagenet (7x7 + max-pool)",
                  one_of(("cifar", "imagenet"), either(("cifar", "imagenet"))), only="resnet"),
    "compute_dtype": Field("float32", "float32 | bfloat16",
                           one_of(("float32", "bfloat16"), either(("float32", "bfloat16")))),
    "zero_init_residual": Field(False, "ResNets: zero-initialised last BN of each block (torchvision's default: "
                                "off, as lightly and solo-learn)", only="resnet"),
    "conv": Field("auto", "ResNets: auto (cpu on the CPU backend, else xla) | xla | cpu",
                  one_of(_CONVS, either(_CONVS)), only="resnet"),
    "padding": Field("same", "ResNets' 3x3 convolutions: same (Flax) | torch (torchvision's)", one_of(PADDINGS),
                     only="resnet"),
}

DATA = {
    "source": Field("tfds", "tfds | folder | numpy | idx | synthetic",
                    one_of(data.SOURCES, f"use one of {', '.join(data.SOURCES)}")),
    "dataset": Field("fashion_mnist", "a TFDS name (source tfds)"),
    "data_dir": Field("", "TFDS data_dir (\"\" = TFDS's default), a folder, an .npz or IDX dir"),
    "train_split": Field("train", "pretraining split; may be unlabeled (STL-10's \"unlabelled\")",
                         test(bool, "must name a split")),
    "eval_train_split": Field("", "labeled split kNN / linear probe fit on (\"\" = train_split)"),
    "test_split": Field("test", "labeled split they are scored on (\"\" = no evaluation)"),
    "image_size": Field(0, "> 0: resize on the host (folders, mixed-size TFDS datasets)",
                        non_negative("must be 0 (keep) or positive")),
    "cache": Field(True, "read each split into memory once (small datasets)"),
    "prefetch": Field(2, "batches prepared ahead by the host thread", non_negative()),
    "crop_on": Field("auto", "auto | host | device (auto: host for folder, tfds + image_size)",
                     one_of(data.CROP_PLACES)),
    "workers": Field(0, "host-crop threads (0: one per available core)",
                     non_negative_int("must be a non-negative integer (0: one per available core)")),
    "max_bad_images": Field(100, "unreadable images substituted (and listed) before the run stops",
                            non_negative_int("must be a non-negative integer (0: stop at the first unreadable "
                                             "image)")),
    "read_timeout_s": Field(300.0, "a batch not read in this long stops the run (0: wait forever)",
                            test(lambda v: isinstance(v, (int, float)) and v >= 0,
                                 "must be a non-negative number of seconds (0: no limit)")),
    "label_fraction": Field(1.0, "< 1: a class-balanced share of the train split (SimCLR: 0.01, 0.1)",
                            test(lambda v: isinstance(v, (int, float)) and 0 < v <= 1,
                                 "must be in (0, 1] (1: every label)")),
    "label_seed": Field(0, "which share (the same on any number of devices or processes)", non_negative_int()),
    "mean": Field((0.2860,), "per channel, after scaling to [0, 1]"),
    "std": Field((0.3530,), "per channel, one positive value per entry of mean"),
    "synthetic_num_examples": Field(512, "source synthetic: images per split"),
    "synthetic_size": Field(28, "source synthetic: their side in pixels"),
    "synthetic_channels": Field(1, "source synthetic: 1 or 3"),
}

AUGMENT = {
    "size": Field(28, "the (global) crops' side in pixels",
                  test(lambda v: _int(v) and v >= 2, "must be an integer of at least 2 (pixels)")),
    "crop_scale": Field((0.08, 1.0), "random resized crop's area range", ordered_pair(0, 1, closed_low=False)),
    "jitter_strength": Field(1.0, "SimCLR recipe: jitter (0.8, 0.8, 0.8, 0.2) x strength", in_range(0.0, 10.0)),
    "blur_prob": Field(0.0, "SimCLR recipe; SimCLR uses no blur on 32x32 CIFAR either", probability()),
    "blur_probs": Field((1.0, 0.1), "BYOL / VICReg asymmetric pair", probabilities(2)),
    "solarize_probs": Field((0.0, 0.2), "BYOL / VICReg asymmetric pair", probabilities(2)),
    "rotation_prob": Field(0.0, "every recipe: rotate by U(-degrees, degrees) with this probability",
                           probability()),
    "rotation_degrees": Field(15.0, "the rotation's range", in_range(0.0, 180.0)),
    "interpolation": Field("bilinear", "the crops' resize: bilinear | bicubic (DINO's, MAE's)",
                           one_of(INTERPOLATIONS)),
    "randaugment_layers": Field(0, "fine-tuning: RandAugment ops per image (MAE/DeiT: 2)", non_negative_int()),
    "randaugment_magnitude": Field(9.0, "of 10 (timm's rand-m9-mstd0.5-inc1)", in_range(0.0, 10.0)),
    "randaugment_magnitude_std": Field(0.5, "the magnitude's noise per op", non_negative()),
    "randaugment_on": Field("auto", "auto: with the crops (host or device, data.crop_on) | device",
                            one_of(RANDAUGMENT_PLACES, f"use one of {', '.join(map(repr, RANDAUGMENT_PLACES))} "
                                   "(auto: with the crops)")),
    "num_local_crops": Field(0, "multi-crop methods (SwAV, DINO): small crops beside 2 global", non_negative()),
    "local_size": Field(12, "the local crops' side, smaller than size"),
    "local_crop_scale": Field((0.05, 0.14), "the local crops' area range", ordered_pair(0, 1, closed_low=False)),
}

OPTIM = {
    "name": Field("lars", " | ".join(optim.NAMES), one_of(optim.NAMES, either(optim.NAMES))),
    "base_lr": Field(0.3, "peak lr = base_lr * batch_size / 256 (optim.lr_scaling)", positive()),
    "weight_decay": Field(1e-6, "decoupled weight decay (none on 1-D parameters)", non_negative()),
    "momentum": Field(0.9, "LARS and SGD", in_range(0.0, 1.0, closed_high=False)),
    "nesterov": Field(False, "SGD: Nesterov momentum (SimCLR's fine-tuning)"),
    "b1": Field(0.9, "AdamW's betas (MAE: 0.9, 0.95)", in_range(0.0, 1.0, closed_high=False)),
    "b2": Field(0.999, "AdamW's second beta", in_range(0.0, 1.0, closed_high=False)),
    "trust_coefficient": Field(0.001, "LARS's trust ratio coefficient", positive()),
    "warmup_steps": Field(10, "linear warm-up from 0", non_negative()),
    "warmup_epochs": Field(0.0, "> 0: warm-up in epochs of the train split (overrides steps)",
                           test(lambda v: v >= 0, "must be non-negative (0: use optim.warmup_steps)")),
    "min_lr": Field(0.0, "the cosine's floor (DINO: 1e-6; MAE fine-tuning: 1e-6)"),
    "warmup_from": Field(0.0, "the warm-up starts at this share of the peak lr (MSN: 0.2)"),
    "schedule_stretch": Field(1.0, "the lr and weight-decay cosines run over this many times the run (MSN: 1.25)"),
    "weight_decay_end": Field(-1.0, ">= 0: cosine from weight_decay to this (DINO: 0.04 -> 0.4)"),
    "clip_grad_norm": Field(0.0, "> 0: clip gradients to this norm (DINO: 3.0)"),
    "clip_mode": Field("global", "global (one norm, optax) | per_parameter (each leaf, DINO) | per_group (each "
                       "of optim.clip_groups, DINOv2)"),
    "clip_groups": Field((), "clip_mode per_group: regular expressions on parameter paths, one norm per group "
                         "(DINOv2: backbone, DINO head, iBOT head)"),
    "clip_exclude": Field("", "a regular expression: parameters it matches in full are not clipped (MSN: "
                          "prototypes)"),
    "lr_scaling": Field("linear_256", "the peak lr: linear_256 (base_lr x batch / 256) | sqrt_1024 (base_lr x "
                        "sqrt(batch / 1024), DINOv2)", one_of(optim.LR_SCALINGS)),
    "freeze_mode": Field("skip", "frozen rules: skip (DINO: the parameter sits out, its Adam moments wait) | "
                         "zero_lr (DINOv2: lr 0, its moments still run)", one_of(optim.FREEZE_MODES)),
    "layer_decay": Field(1.0, "< 1: ViT layer-wise lr decay (BEiT/MAE fine-tuning: 0.65-0.75)"),
    "rules": Field((), "(pattern, lr_mult, wd_mult, frozen_steps) on parameter paths, first full match wins "
                   "(jaxssl/ops/optim.py)"),
    "frozen_unit": Field("steps", "what the rules' last entry counts: steps | epochs (of the run's own data and "
                         "batch)", one_of(optim.FROZEN_UNITS)),
}

TRAIN = {
    "batch_size": Field(256, "global, over all devices and hosts", positive_int()),
    "num_epochs": Field(1.0, "may be fractional"),
    "num_steps": Field(-1, "> 0 overrides num_epochs"),
    "log_every": Field(10, "steps between log lines", positive()),
    "checkpoint_every": Field(500, "steps between checkpoints (0: only at the end and on SIGTERM)",
                              non_negative("must be non-negative (0: only at the end)")),
    "keep_checkpoints": Field(3, "the newest checkpoints kept", positive()),
    "grad_accum_steps": Field(1, "> 1: each device's share in that many micro-batches", positive_int()),
    "allow_coupled_accumulation": Field(False, "also for losses / BN that couple the batch"),
}

PARALLEL = {
    "fsdp": Field(False, "shard params, optimizer state, EMA target (jaxssl/engine/fsdp.py)", boolean()),
    "fsdp_min_size": Field(2**14, "smaller arrays stay replicated under fsdp", positive_int()),
    "fsdp_per_block": Field(True, "ViT blocks gather their own shards (False: all on entry)", boolean()),
}

EVAL = {
    "evaluators": Field(("knn", "online_probe", "linear_probe"), "by name (jaxssl/evals/), in print order"),
    "knn_k": Field(200, "neighbours of the weighted kNN", positive()),
    "knn_temperature": Field(0.1, "the kNN's temperature", positive()),
    "knn_at_init": Field(True, "also report the random-init encoder (the baseline to beat)"),
    "batch_size": Field(1000, "images per evaluation batch", positive_int()),
    "at_end": Field(True, "evaluate after training"),
    "every_epochs": Field(0.0, "> 0: also evaluate every this many epochs during training",
                          non_negative("must be non-negative (0 = only at the end)")),
    "online_probe": Field(True, "linear classifier on stop-gradient features, when labeled"),
    "online_probe_lr": Field(0.1, "its SGD learning rate", positive()),
    "linear_probe": Field(False, "offline linear probe after training (python -m jaxssl.evaluate)"),
    "linear_epochs": Field(30, "its epochs", positive_int()),
    "linear_lr": Field(0.1, "its SGD learning rate", positive()),
    "linear_batch_size": Field(256, "its batch", positive_int()),
    "linear_weight_decay": Field(0.0, "its weight decay"),
    "linear_augment": Field(False, "random resized crop + flip on the probe's training images"),
}

def _writers(config, field) -> None:
  """Known writers, each installed: a missing tracker is one line before the run starts, not a traceback later."""
  import importlib.util

  value = config_checks.get(config, field)
  for name in value:
    if name not in trackers.WRITERS:
      fail(field, value, f"unknown writer {name!r}; {either(trackers.WRITERS)}")
    if importlib.util.find_spec(trackers.PACKAGES[name]) is None:
      fail(field, value, f"{name} needs the {trackers.PACKAGES[name]} package: pip install 'jaxssl[{name}]'")


METRICS = {
    "writers": Field(("tensorboard",), "where metrics, the config and pictures go besides metrics.jsonl: "
                     "tensorboard, wandb (jaxssl/runs/trackers.py)", _writers),
    "run_name": Field("", "the run's name in TensorBoard and W&B ('': the workdir's last folder)"),
    "embedding_points": Field(500, "test images in TensorBoard's projector (t-SNE, PCA) at each evaluation; 0: none",
                              non_negative_int()),
    "wandb_project": Field("jaxssl", "W&B project"),
    "wandb_entity": Field("", "W&B entity (team or user; '': your default)"),
    "wandb_mode": Field("", "W&B mode: online | offline (sync later: wandb sync) | disabled ('': WANDB_MODE or "
                        "online)", one_of(("", "online", "offline", "disabled"))),
}

SECTIONS: dict[str, dict[str, Field]] = {"model": MODEL, "data": DATA, "augment": AUGMENT, "optim": OPTIM,
                                         "train": TRAIN, "parallel": PARALLEL, "eval": EVAL,
                                         "metrics": METRICS}


def section_defaults(section: str) -> ml_collections.ConfigDict:
  """A shared section's fields at their defaults, in declaration order."""
  return ml_collections.ConfigDict({name: f.default for name, f in SECTIONS[section].items()})


def check(config: ml_collections.ConfigDict) -> None:
  """Every field's own rule, section by section (ConfigError for the first bad value)."""
  SEED.rule(config, "seed")
  for section, fields in SECTIONS.items():
    for name, f in fields.items():
      if f.rule is not None:
        f.rule(config, f"{section}.{name}")


def rows(config: ml_collections.ConfigDict | None = None) -> list[tuple[str, Any, str]]:
  """(dotted field, value, help) of every shared field: ``config``'s values, or the defaults."""
  value = lambda field, f: f.default if config is None else config_checks.get(config, field)  # noqa: E731
  out = [("seed", value("seed", SEED), SEED.help)]
  for section, fields in SECTIONS.items():
    out += [(f"{section}.{name}", value(f"{section}.{name}", f), f.help) for name, f in fields.items()]
  return out


def describe(config: ml_collections.ConfigDict) -> str:
  """The resolved config, one field a line with its meaning (``python -m jaxssl.main --print_config``): the
  method's own fields (documented in its module's ``defaults()``), then the shared sections, without the
  fields of the encoder family the config does not use."""
  where = tasks.module(config.method.name).__name__
  lines = [("method.name", config.method.name, f"the method or task ({where})")]
  lines += [(f"method.{key}", value, f"{where}.defaults()") for key, value in config.method.items() if key != "name"]
  unread = set(other_family_fields(config))
  lines += [row for row in rows(config) if row[0] not in unread]
  width = max(len(field) for field, _, _ in lines)
  shown = [(field, repr(tuple(value) if isinstance(value, list) else value), text) for field, value, text in lines]
  value_width = min(max(len(v) for _, v, _ in shown), 40)
  return "\n".join(f"{field:<{width}}  {value:<{value_width}}  # {text}" for field, value, text in shown)


def markdown() -> str:
  """The README's field table."""
  lines = ["| field | default | meaning |", "|---|---|---|"]
  lines += [f"| `{field}` | `{value!r}` | {text.replace('|', '/')} |" for field, value, text in rows()]
  return "\n".join(lines)


def main() -> None:
  """``python -m jaxssl.schema.fields``: every shared field, its default and meaning."""
  width = max(len(field) for field, _, _ in rows())
  for field, value, text in rows():
    print(f"{field:<{width}}  {value!r:<24} {text}")


if __name__ == "__main__":
  main()
