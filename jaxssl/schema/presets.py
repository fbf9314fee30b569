"""Config presets that several config files share: a recipe's optimizer and schedule, applied to a config
(``configs/*.py`` are loaded by path and cannot import each other, so what two of them share lives here)."""

from __future__ import annotations

import ml_collections

from jaxssl.methods import dino


def vit_small_imagenet(config: ml_collections.ConfigDict,
                       freeze=dino.freeze_last_layer) -> ml_collections.ConfigDict:
  """DINO's ViT-S/16 ImageNet optimizer and schedule (the official 100-epoch settings), which iBOT's ViT-S/16
  recipe shares, for a ViT-S/16 config (``defaults.imagenet(..., encoder="vit_small")``): AdamW lr 0.0005 x
  batch / 256 to a minimum of 1e-6, weight decay 0.04 -> 0.4, each parameter's gradient clipped to norm 3, 100
  epochs, the teacher temperature's warm-up over 30 epochs, the last layer(s) frozen for the first epoch
  (``freeze(count)`` gives the rules). The last two count the epochs of the data the run is given
  (``jaxssl.schema.schedules.in_steps``), as the official code counts its own."""
  o = config.optim
  o.name, o.base_lr, o.min_lr = "adamw", 0.0005, 1e-6
  o.weight_decay, o.weight_decay_end = 0.04, 0.4
  o.clip_grad_norm, o.clip_mode = 3.0, "per_parameter"
  config.train.num_epochs = 100
  # In epochs of the data the run is given (an image folder's, imagenette's), counted in steps when it starts.
  config.method.teacher_temperature_warmup_epochs = 30.0
  config.method.teacher_temperature_hold_epochs = 1.0          # one value per epoch
  o.rules, o.frozen_unit = freeze(1), "epochs"
  return config
