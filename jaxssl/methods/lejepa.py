"""LeJEPA (Balestriero and LeCun 2025, "LeJEPA: Provable and Scalable Self-Supervised Learning Without the
Heuristics", arXiv:2511.08544), as the authors' code (rbalestr-lab/lejepa: ``MINIMAL.md``'s training step,
``EppsPulley`` and ``SlicingUnivariateTest``).

One network, no teacher, no predictor, no stop-gradient: each view's projection predicts the mean projection of
its image's global views, and SIGReg pulls every view's projections of the global batch towards an isotropic
Gaussian (``losses.lejepa_loss``). Its directions are drawn from (``seed``, step), the same on every device, as
the official code seeds them with the global step.

Views: ``method.num_global_views`` global crops (the repository's recipe: 2 at 224 px, crops of 30-100%) and
``augment.num_local_crops`` local ones (6 at 98 px, crops of 5-30%), all with the same colour jitter (0.4, 0.4,
0.2, 0.1) p 0.8, grayscale 0.2, blur 0.5, solarisation 0.2 and flip. MINIMAL.md's small-data recipe is 4 global
views and no local ones.

Where this departs from the authors' code: BatchNorm in the projector runs over the global batch (their DDP
runs it per GPU; the same on one device); the encoder's features go to the projector as they are (MINIMAL.md
puts timm's 512-wide classification layer on the ViT's class token first).
"""

from __future__ import annotations

import jax

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import recipe_kwargs
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import augment, losses


def recipes(config) -> tuple[augment.ViewRecipe, ...]:
  """``method.num_global_views`` global views, then ``augment.num_local_crops`` local ones with the same
  photometric recipe."""
  a = config.augment
  view = augment.ViewRecipe(**recipe_kwargs(config), blur_prob=0.5, solarize_prob=0.2)
  return augment.multicrop_recipes((view,) * config.method.num_global_views, a.local_size, a.num_local_crops,
                                   tuple(a.local_crop_scale))


def make(config) -> base.Method:
  """The prediction term over all views and SIGReg on each, mixed by ``method.lam``."""
  m = config.method
  seed_key = jax.random.key(config.seed)

  def loss(online, target, method_state, labels, step, axis_name):
    directions = losses.random_directions(jax.random.fold_in(seed_key, step), m.proj_dim, m.num_slices)
    value, prediction, regulariser = losses.lejepa_loss(online.projections, m.num_global_views, directions, m.lam,
                                                        m.t_max, m.knots, axis_name)
    return value, {"loss": value, "prediction_loss": prediction, "sigreg_loss": regulariser}

  return joint_embedding.method("lejepa", mlp_heads, recipes, loss)


def defaults():
  """The authors' values: the projector 2048-2048 (BatchNorm, ReLU) to 16 (MINIMAL.md), lam 0.05 (the paper's
  default; MINIMAL.md's small-data run 0.02), 1,024 directions (the repository's README), the Epps-Pulley
  integral on 17 points of [0, 3], 2 global views."""
  return {"proj_hidden_dims": (2048, 2048), "proj_dim": 16, "lam": 0.05, "num_slices": 1024, "t_max": 3.0,
          "knots": 17, "num_global_views": 2}


def config_defaults() -> dict:
  """The repository's recipe: AdamW lr 5e-4, weight decay 5e-4 for ResNets (5e-2 for ViTs), a warm-up, then a
  cosine to lr / 1000; global crops of 30-100%, local crops of 5-30%."""
  return {"optim.name": "adamw", "optim.base_lr": 5e-4, "optim.weight_decay": 5e-4, "optim.min_lr": 5e-7,
          "augment.crop_scale": (0.3, 1.0), "augment.local_crop_scale": (0.05, 0.3)}


def check(config) -> None:
  check_heads(config)
  config_checks.in_range(config, "method.lam", 0.0, 1.0)
  config_checks.positive_int(config, "method.num_slices")
  config_checks.positive_int(config, "method.num_global_views")
  if not (isinstance(config.method.knots, int) and config.method.knots >= 3 and config.method.knots % 2 == 1):
    config_checks.fail("method.knots", config.method.knots, "must be an odd integer of at least 3")
  if not config.method.t_max > 0:
    config_checks.fail("method.t_max", config.method.t_max, "must be positive")


def small(batch_size: int) -> dict:
  return {**small_heads(), "method.num_slices": 32}
