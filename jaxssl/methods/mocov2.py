"""MoCo v2 (Chen, Fan, Girshick and He 2020, "Improved Baselines with Momentum Contrastive Learning",
arXiv:2003.04297), on MoCo (He et al. 2020, "Momentum Contrast for Unsupervised Visual Representation
Learning", arXiv:1911.05722), as the official code (facebookresearch/moco, ``builder.py`` and ``main_moco.py``
with ``--mlp --moco-t 0.2 --aug-plus --cos``).

The online network (the query encoder) sees the first view, the momentum encoder (the key encoder, an EMA of
the encoder and the MLP head at a constant 0.999) the second; each query's positive is its key, its negatives a
queue of 65,536 keys of earlier batches, into which this batch's keys go after the step (``method_state``).

Where this departs from the official code, and why:

- BatchNorm runs over the global batch (synchronised over devices), where the official code runs it per GPU
  on a shuffled share of the keys' batch ("shuffle BN"), which exists to stop per-GPU statistics from leaking
  which key belongs to which query; global statistics do not leak either (MoCo v3 uses them). On one device the
  two are the same computation.
- The learning rate follows a cosine per step; the official ``--cos`` sets it once per epoch.
- Weight decay skips biases and BatchNorm's parameters (every method here does); PyTorch's SGD decays them too.
"""

from __future__ import annotations

from jaxssl.common import config_checks
from jaxssl.methods import base, joint_embedding
from jaxssl.methods.base import simclr_pair
from jaxssl.methods.joint_embedding import check_heads, small_heads
from jaxssl.models import MLP
from jaxssl.ops import losses


def heads(config, axis_name, dtype) -> joint_embedding.Heads:
  """MoCo v2's MLP head: fc (method.proj_hidden_dims), ReLU, fc (method.proj_dim), no BatchNorm."""
  m = config.method
  return joint_embedding.Heads(MLP(hidden_dims=tuple(m.proj_hidden_dims), output_dim=m.proj_dim, use_bn=False,
                                   axis_name=axis_name, dtype=dtype))


def make(config) -> base.Method:
  """InfoNCE of the first view's queries against the second view's keys and the queue (``losses.moco_queue_loss``);
  the keys of the global batch then replace the queue's oldest."""
  m = config.method

  def init_state(key, config):
    return losses.random_queue(key, m.queue_size, m.proj_dim)               # the official start: random keys

  def loss(online, target, method_state, labels, step, axis_name):
    value = losses.moco_queue_loss(online.projections[0], target.projections[0], method_state["queue"],
                                   m.temperature, axis_name)
    return value, {"loss": value}

  def update_state(method_state, online, target, step, axis_name):
    queue, pointer = losses.enqueue(method_state["queue"], method_state["pointer"], target.projections[0],
                                    axis_name)
    return {"queue": queue, "pointer": pointer}

  return joint_embedding.method("mocov2", heads, mocov2_pair, loss, ema=base.ema_schedule(m.momentum, "constant"),
                                init_state=init_state, update_state=update_state, online_views=(0,),
                                target_views=(1,))


def mocov2_pair(config):
  """MoCo v2's two views (``--aug-plus``): SimCLR's recipe with colour jitter (0.4, 0.4, 0.4, 0.1), p 0.8 (the
  config's ``augment.jitter_strength`` 0.5), grayscale 0.2, blur with ``augment.blur_prob`` (0.5), flip."""
  return simclr_pair(config)


def defaults():
  """Official defaults: the MLP head 2048-128 (the ResNet-50's width, then ``--moco-dim``), a queue of 65,536
  keys (``--moco-k``), temperature 0.2 (``--moco-t``), momentum 0.999 (``--moco-m``), constant."""
  return {"proj_hidden_dims": (2048,), "proj_dim": 128, "queue_size": 65536, "temperature": 0.2,
          "momentum": 0.999}


def config_defaults() -> dict:
  """The official optimizer and views: SGD with momentum 0.9, lr 0.03 per 256 images, weight decay 1e-4, a
  cosine with no warm-up; crops of 20-100%, jitter (0.4, 0.4, 0.4, 0.1), blur with probability 0.5."""
  return {"optim.name": "sgd", "optim.base_lr": 0.03, "optim.weight_decay": 1e-4, "optim.momentum": 0.9,
          "optim.warmup_steps": 0, "augment.crop_scale": (0.2, 1.0), "augment.jitter_strength": 0.5,
          "augment.blur_prob": 0.5}


def check(config) -> None:
  check_heads(config)
  config_checks.temperature(config, "method.temperature")
  config_checks.multiple_of_batch(config, "method.queue_size")
  config_checks.in_range(config, "method.momentum", 0.0, 1.0, closed_high=False)


def small(batch_size: int) -> dict:
  return {**small_heads(), "method.queue_size": 4 * batch_size, "method.momentum": 0.99}
