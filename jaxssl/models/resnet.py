"""ResNets (He et al. 2016, arXiv:1512.03385) as Flax linen modules, with cross-device BatchNorm.

``stem="cifar"`` is the 3x3 stride-1 convolution with no max-pool used for 32x32 images (SimCLR appendix B.9);
``stem="imagenet"`` the 7x7 stride-2 convolution and 3x3 max-pool. The output is the global-average-pooled
representation h of shape [N, widths[-1] * expansion].
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax.numpy as jnp
from jax import lax

from jaxssl.models import conv as fast_conv

Dtype = Any
CONV_IMPLEMENTATIONS = {"xla": lax.conv_general_dilated, "cpu": fast_conv.conv_general_dilated}


def _last_scale_init(zero: bool):
  """Goyal et al. 2017 start each residual branch at zero; torchvision (lightly, solo-learn) does not by default."""
  return nn.initializers.zeros if zero else nn.initializers.ones


def pad_3x3(padding: str):
  """The padding of a 3x3 convolution: Flax's ``SAME`` (at stride 2 on an even side: 0 before, 1 after, as
  DeepMind's BYOL and big_vision) or PyTorch's ``padding=1`` on every side (``torch``: torchvision's and timm's
  ResNets, whose weights then compute the same features)."""
  return "SAME" if padding == "same" else ((1, 1), (1, 1))


PADDINGS = ("same", "torch")


class BasicBlock(nn.Module):
  """Two 3x3 convolutions (ResNet-18/34)."""
  features: int
  strides: int
  conv: Any
  norm: Any
  zero_init_residual: bool = False
  padding: str = "same"
  expansion = 1

  @nn.compact
  def __call__(self, x):
    residual = x
    pad = pad_3x3(self.padding)
    y = self.conv(self.features, (3, 3), (self.strides, self.strides), padding=pad)(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.features, (3, 3), padding=pad)(y)
    y = self.norm(scale_init=_last_scale_init(self.zero_init_residual))(y)
    if residual.shape != y.shape:
      residual = self.conv(self.features, (1, 1), (self.strides, self.strides), name="shortcut_conv")(residual)
      residual = self.norm(name="shortcut_norm")(residual)
    return nn.relu(residual + y)


class BottleneckBlock(nn.Module):
  """1x1, 3x3, 1x1 convolutions with 4x expansion (ResNet-50), stride on the 3x3 (torchvision's v1.5)."""
  features: int
  strides: int
  conv: Any
  norm: Any
  zero_init_residual: bool = False
  padding: str = "same"
  expansion = 4

  @nn.compact
  def __call__(self, x):
    residual = x
    y = nn.relu(self.norm()(self.conv(self.features, (1, 1))(x)))
    y = nn.relu(self.norm()(self.conv(self.features, (3, 3), (self.strides, self.strides),
                                      padding=pad_3x3(self.padding))(y)))
    y = self.conv(self.features * 4, (1, 1))(y)
    y = self.norm(scale_init=_last_scale_init(self.zero_init_residual))(y)
    if residual.shape != y.shape:
      residual = self.conv(self.features * 4, (1, 1), (self.strides, self.strides), name="shortcut_conv")(residual)
      residual = self.norm(name="shortcut_norm")(residual)
    return nn.relu(residual + y)


class ResNet(nn.Module):
  """A ResNet encoder.

  Attributes:
    stage_sizes: blocks per stage.
    block: BasicBlock or BottleneckBlock.
    widths: channels of each stage (before expansion).
    stem: "cifar" or "imagenet".
    axis_name: mapped axis over which BatchNorm averages its batch statistics (synchronised BN); None for local.
    zero_init_residual: initialise the last BN scale of each block at zero.
    dtype: computation dtype (e.g. jnp.bfloat16); parameters stay float32.
    conv: "xla" (``lax.conv_general_dilated``) or "cpu" (the same forward with a backward pass XLA:CPU runs
      faster, jaxssl.models.conv); equal values and gradients, the same parameters.
    remat: rematerialise each residual block in the backward pass (``nn.remat``): one block's activations live
      at a time; the same parameters, values and gradients (BN's statistics are synchronised again in the
      recomputation).
    padding: the 3x3 convolutions' padding, ``same`` (Flax) or ``torch`` (``pad_3x3``).
    stem_width: the stem's channels (0: ``widths[0]``; timm's narrow ResNets keep a 64-channel stem).
  """
  stage_sizes: Sequence[int]
  block: Any
  widths: Sequence[int] = (64, 128, 256, 512)
  stem: str = "cifar"
  axis_name: str | None = None
  bn_momentum: float = 0.9
  zero_init_residual: bool = False
  dtype: Dtype = jnp.float32
  conv: str = "xla"
  remat: bool = False
  padding: str = "same"
  stem_width: int = 0

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = True) -> jnp.ndarray:
    """[N, H, W, C] float images -> [N, widths[-1] * expansion] representations."""
    chex.assert_rank(x, 4)
    if self.conv not in CONV_IMPLEMENTATIONS:
      raise ValueError(f"unknown conv {self.conv!r}; use one of {sorted(CONV_IMPLEMENTATIONS)}")
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(2.0, "fan_out", "normal"),
                             conv_general_dilated=CONV_IMPLEMENTATIONS[self.conv])
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=self.bn_momentum,
                             epsilon=1e-5, dtype=self.dtype, axis_name=self.axis_name if train else None)
    x = x.astype(self.dtype)
    stem_width = self.stem_width or self.widths[0]
    if self.stem == "cifar":
      x = conv(stem_width, (3, 3), padding=pad_3x3(self.padding), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_norm")(x))
    elif self.stem == "imagenet":
      x = conv(stem_width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], name="stem_conv")(x)
      x = nn.relu(norm(name="stem_norm")(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    else:
      raise ValueError(f"unknown stem {self.stem!r}; use 'cifar' or 'imagenet'")
    block = nn.remat(self.block) if self.remat else self.block
    count = 0
    for stage, (num_blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
      for index in range(num_blocks):
        strides = 2 if stage > 0 and index == 0 else 1
        # Named as Flax names them without remat ("BasicBlock_0", ...), so checkpoints fit either way.
        x = block(width, strides, conv=conv, norm=norm, zero_init_residual=self.zero_init_residual,
                  padding=self.padding, name=f"{self.block.__name__}_{count}")(x)
        count += 1
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block=BottleneckBlock)
# For CPU tests and benchmarks: one basic block per stage, widths 16-32-64-128, CIFAR stem.
SmallResNet = functools.partial(ResNet, stage_sizes=(1, 1, 1, 1), block=BasicBlock, widths=(16, 32, 64, 128))

RESNETS = {"resnet18": ResNet18, "resnet50": ResNet50, "small_resnet": SmallResNet}
