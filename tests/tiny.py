"""A tiny config (synthetic 16x16 images, the method's own small heads and sizes) for fast trainer tests."""

from jaxssl import tasks
from jaxssl.schema import defaults


def tiny_config(method: str, batch_size: int = 16):
  config = defaults.get_config(method)
  config.data.source = "synthetic"
  config.data.synthetic_size = 16
  config.augment.size = 16
  config.train.batch_size = batch_size
  config.train.num_steps = 3
  config.optim.warmup_steps = 1
  config.eval.batch_size = 64
  return defaults.override(config, tasks.small(method, batch_size))
