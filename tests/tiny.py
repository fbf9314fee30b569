"""A tiny config (synthetic 16x16 images, small heads) for fast trainer tests."""

from configs import common


def tiny_config(method: str, batch_size: int = 16):
  config = common.get_config(method)
  config.data.source = "synthetic"
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
  if "num_prototypes" in m:
    # A queue of one global batch, full after the first step: the second step already uses it.
    m.num_prototypes, m.queue_size, m.queue_start_step, m.freeze_prototypes_steps = 8, batch_size, 0, 1
    config.augment.num_local_crops, config.augment.local_size = 2, 8
  if "out_dim" in m:
    m.out_dim, m.bottleneck_dim, m.teacher_temperature_warmup_steps = 32, 8, 2
    m.freeze_last_layer_steps = 2
    config.augment.num_local_crops, config.augment.local_size = 2, 8
  if "w_size" in m:
    m.proj_dim, m.w_size = 4, 8
  config.eval.batch_size = 64
  return config
