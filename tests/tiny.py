"""A tiny config (synthetic 16x16 images, small heads) for fast trainer tests."""

from configs import common


def tiny_config(method: str, batch_size: int = 16):
  config = common.get_config(method)
  config.data.dataset = "synthetic"
  config.data.synthetic_size = 16
  config.augment.size = 16
  config.train.batch_size = batch_size
  config.train.num_steps = 3
  config.optim.warmup_steps = 1
  m = config.method
  m.proj_hidden_dims = (32,)
  m.proj_dim = 16
  if "pred_hidden_dims" in m:
    m.pred_hidden_dims = (32,)
  for field in ("queue_size", "bank_size"):
    if field in m:
      m[field] = 4 * batch_size
  if "w_size" in m:
    m.proj_dim, m.w_size = 4, 8
  config.eval.batch_size = 64
  return config
