"""VICReg (Bardes, Ponce and LeCun 2022, "Variance-Invariance-Covariance Regularization", arXiv:2105.04906)."""

from __future__ import annotations

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import byol_pair
from jaxssl.methods.joint_embedding import check_heads, mlp_heads, small_heads
from jaxssl.ops import losses


def make(config) -> base.Method:
  """VICReg on the expander outputs of two views, statistics over the global batch."""
  m = config.method

  def loss(online, target, method_state, labels, step, axis_name):
    z1, z2 = online.projections
    value, terms = losses.vicreg_loss(z1, z2, sim_coeff=m.sim_coeff, std_coeff=m.std_coeff,
                                      cov_coeff=m.cov_coeff, axis_name=axis_name, return_terms=True)
    return value, {"loss": value, **terms}

  return joint_embedding.method("vicreg", mlp_heads, byol_pair, loss)


def defaults():
  """Paper defaults: expander 8192-8192-8192, coefficients 25 / 25 / 1."""
  return {"proj_hidden_dims": (8192, 8192), "proj_dim": 8192, "sim_coeff": 25.0, "std_coeff": 25.0,
          "cov_coeff": 1.0}


def check(config) -> None:
  check_heads(config)
  for field in ("sim_coeff", "std_coeff", "cov_coeff"):
    config_checks.in_range(config, f"method.{field}", 0.0, 1e4)


def small(batch_size: int) -> dict:
  return small_heads()
