"""``python -m jaxssl.finetune``: full fine-tuning of a pretrained run's encoder with a new linear head, or the
same encoder trained from scratch with the same recipe and budget (``--from scratch``).

    python -m jaxssl.finetune --config configs/finetune.py --pretrained runs/simclr --workdir runs/simclr_ft
    python -m jaxssl.finetune --config configs/finetune.py --pretrained runs/simclr --from scratch \\
        --workdir runs/simclr_scratch
    python -m jaxssl.finetune --config configs/finetune_vit.py --pretrained runs/mae --label_fraction 0.1 \\
        --workdir runs/mae_ft10
    python -m jaxssl.finetune --config configs/finetune.py --pretrained runs/vicreg --workdir runs/vicreg_ft \\
        --scratch_workdir runs/vicreg_scratch          # both, then their top-1s side by side

A fine-tuning run is a run of the ``classifier`` task (``jaxssl/tasks/classifier.py``) on the same loop as
pretraining: its own workdir, checkpoints and exact resume, SIGTERM, the NaN guard, run identity and lock,
metrics and results.json (test top-1 / top-5). The encoder's architecture and the data's normalisation come from
the pretrained run's config (``ARCHITECTURE``), so the weights fit and the from-scratch baseline is the same
network. ``--config.x=y`` overrides work as in ``python -m jaxssl.main``.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from jaxssl import main as entry                # --config, --workdir, --distributed, --allow_change
from jaxssl.schema import fields                # after main, which sets XLA flags before JAX starts

_PRETRAINED = flags.DEFINE_string("pretrained", "", "Workdir of the pretraining run whose encoder is fine-tuned.")
_STEP = flags.DEFINE_integer("step", -1, "Its checkpoint step (-1: the latest).")
_FROM = flags.DEFINE_enum("from", "pretrained", ["pretrained", "scratch"],
                          "pretrained: start from the run's encoder; scratch: the same encoder, randomly initialised.")
_SCRATCH_WORKDIR = flags.DEFINE_string("scratch_workdir", "", "Also train the from-scratch baseline (the same "
                                       "config, --from scratch) in this workdir and print both top-1s.")
_LABEL_FRACTION = flags.DEFINE_float("label_fraction", None, "A class-balanced share of the train split's labels "
                                     "(SimCLR's semi-supervised protocol: 0.01, 0.1); default: the config's.")

# Config fields that make the encoder what it was in pretraining (and the inputs what it saw).
ARCHITECTURE = ("model.encoder", "model.patch_size", "model.pos_embed", "model.qkv_bias", "model.weight_init",
                "model.stem", "model.zero_init_residual", "data.mean", "data.std")


def prepare(config) -> None:
  """Sets the classifier config's fields from the command line: the pretrained run, its step, pretrained or
  scratch, the label fraction, and the encoder's architecture from the pretrained run's config."""
  from jaxssl.common.config_checks import fail
  from jaxssl.runs.restore import load_config

  if config.method.name != "classifier":
    fail("method.name", config.method.name, "python -m jaxssl.finetune trains a classifier: start the config from "
         "jaxssl.schema.defaults.get_config('classifier') (configs/finetune.py)")
  if _LABEL_FRACTION.value is not None:
    config.data.label_fraction = _LABEL_FRACTION.value
  config.method.init = _FROM.value
  if _SCRATCH_WORKDIR.value and _FROM.value == "scratch":
    fail("method.init", "scratch", "--scratch_workdir compares a pretrained run with its baseline: drop "
         "--from scratch")
  if _SCRATCH_WORKDIR.value and _SCRATCH_WORKDIR.value.rstrip("/") == entry._WORKDIR.value.rstrip("/"):
    fail("method.init", "pretrained", f"--scratch_workdir={_SCRATCH_WORKDIR.value!r} must differ from --workdir")
  if not _PRETRAINED.value:
    if _FROM.value == "pretrained":
      fail("method.pretrained", "", "name the pretraining run with --pretrained DIR (or train from scratch with "
           "--from scratch)")
    return
  from jaxssl import weights

  if not weights.is_jaxssl_run(_PRETRAINED.value) and os.path.exists(_PRETRAINED.value):
    _from_weights(config)
    return
  pretrained = load_config(_PRETRAINED.value, "--pretrained")      # CheckpointError when it is not a run directory
  _check_recipe(config, pretrained.model.encoder)
  taken = []
  unread = {f"model.{name}" for name, f in fields.MODEL.items()
            if f.only and f.only != fields.encoder_family(pretrained.model.encoder)}
  for field in ARCHITECTURE:
    section, key = field.split(".")
    value = pretrained[section][key] if field not in unread else fields.MODEL[key].default
    config[section][key] = tuple(value) if isinstance(value, list) else value
    if field not in unread:
      taken.append(f"{field}={config[section][key]!r}")
  config.method.pretrained, config.method.pretrained_step = _PRETRAINED.value, _STEP.value
  print(f"fine-tuning ({_FROM.value}): from {_PRETRAINED.value}: {', '.join(taken)}", flush=True)


def _check_recipe(config, encoder: str) -> None:
  """A recipe is made for one encoder family (its config file's own encoder: configs/finetune.py a ResNet's,
  configs/finetune_vit.py a ViT's); the pretrained encoder of the other family is refused (ConfigError)."""
  from jaxssl.common.config_checks import fail

  made_for, given = fields.encoder_family(config.model.encoder), fields.encoder_family(encoder)
  if made_for != given:
    other = {"vit": "configs/finetune_vit.py", "resnet": "configs/finetune.py"}[given]
    fail("model.encoder", encoder, f"--pretrained={_PRETRAINED.value!r} has a {given} encoder, but the config is "
         f"a recipe for {made_for}s (its own model.encoder={config.model.encoder!r}): use {other}")


def _from_weights(config) -> None:
  """--pretrained names weights from the PyTorch world (a timm folder or a weights file): the encoder's
  architecture fields come from them, and the run starts from them (``model.init_from``) or, --from scratch,
  from the same architecture at random."""
  from jaxssl.common.config_checks import fail
  from jaxssl.weights import init_from

  if _STEP.value != -1:
    fail("method.pretrained_step", _STEP.value, f"--pretrained={_PRETRAINED.value!r} is a weights file or folder, "
         "which has no steps: drop --step")
  taken = init_from.architecture(_PRETRAINED.value)        # WeightsError (one line) when jaxssl has no such encoder
  if "encoder" in taken:
    _check_recipe(config, taken["encoder"])
  for field, value in taken.items():
    config.model[field] = value
  if _FROM.value == "pretrained":
    config.model.init_from = _PRETRAINED.value
  shown = ", ".join(f"model.{k}={v!r}" for k, v in taken.items())
  print(f"fine-tuning ({_FROM.value}): from the weights in {_PRETRAINED.value}: {shown}", flush=True)


def with_scratch_baseline(config, results: dict) -> None:
  """With --scratch_workdir, trains (or, finished, reads) the same config from scratch there and prints the two
  test top-1s side by side."""
  from jaxssl import train

  if not _SCRATCH_WORKDIR.value:
    return
  baseline = config.copy_and_resolve_references()
  with baseline.unlocked():
    baseline.method.init = "scratch"
    baseline.model.init_from = ""
  print(f"fine-tuning: the from-scratch baseline in {_SCRATCH_WORKDIR.value}", flush=True)
  scratch = train.run(baseline, _SCRATCH_WORKDIR.value)
  if "top1" in results and "top1" in scratch:
    print(f"top-1: {100 * results['top1']:.2f}% fine-tuned from {config.method.pretrained}, "
          f"{100 * scratch['top1']:.2f}% from scratch ({results.get('train_examples', '?')} labeled examples, "
          f"{results.get('steps', '?')} steps each)", flush=True)


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(entry.main(argv, prepare=prepare, after=with_scratch_baseline)),
          flags_parser=entry.parse_flags)
