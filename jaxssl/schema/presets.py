"""Config presets that several config files share: a recipe's optimizer and schedule, applied to a config
(``configs/*.py`` are loaded by path and cannot import each other, so what two of them share lives here)."""

from __future__ import annotations

import ml_collections

from jaxssl.methods import dino
from jaxssl.schema import defaults


def vit_small_imagenet(config: ml_collections.ConfigDict,
                       freeze=dino.freeze_last_layer) -> ml_collections.ConfigDict:
  """DINO's ViT-S/16 ImageNet optimizer and schedule (the official 100-epoch settings), which iBOT's ViT-S/16
  recipe shares: ViT-S/16, AdamW lr 0.0005 x batch / 256 to a minimum of 1e-6, weight decay 0.04 -> 0.4, each
  parameter's gradient clipped to norm 3, 100 epochs, the teacher temperature's warm-up over 30 epochs, the
  last layer(s) frozen for the first epoch (``freeze(steps)`` gives the rules)."""
  config.model.encoder, config.model.patch_size = "vit_small", 16
  o = config.optim
  o.name, o.base_lr, o.min_lr = "adamw", 0.0005, 1e-6
  o.weight_decay, o.weight_decay_end = 0.04, 0.4
  o.clip_grad_norm, o.clip_mode = 3.0, "per_parameter"
  config.train.num_epochs = 100
  steps_per_epoch = defaults.steps_per_epoch(config)
  config.method.teacher_temperature_warmup_steps = 30 * steps_per_epoch
  config.method.teacher_temperature_hold_steps = steps_per_epoch          # one value per epoch
  o.rules = freeze(steps_per_epoch)
  return config
