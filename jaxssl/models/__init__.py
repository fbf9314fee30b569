"""Encoders and heads; ``make_encoder`` builds the encoder a config names."""

from __future__ import annotations

from typing import Any

from absl import logging

import flax.linen as nn
import jax

from jaxssl.models.heads import (MLP, Classifier, DINOHead, LinearProbe, PrototypeNetwork, Prototypes, SSLNetwork,
                                 cosine_scores)
from jaxssl.models.resnet import RESNETS, ResNet, ResNet18, ResNet50, SmallResNet
from jaxssl.models.vit import ViT, ViTBase, ViTGiant, ViTHuge, ViTLarge, ViTMicro, ViTSmall, ViTTiny, swiglu_mlp_ratio

VITS = {"vit_micro": ViTMicro, "vit_tiny": ViTTiny, "vit_small": ViTSmall, "vit_base": ViTBase,
        "vit_large": ViTLarge, "vit_huge": ViTHuge, "vit_giant": ViTGiant}
ENCODERS = {**RESNETS, **VITS}

__all__ = ["MLP", "Classifier", "DINOHead", "LinearProbe", "PrototypeNetwork", "Prototypes", "SSLNetwork", "cosine_scores",
           "ENCODERS", "ResNet", "ResNet18", "ResNet50", "SmallResNet", "ViT", "ViTBase", "ViTGiant", "ViTHuge", "ViTLarge",
           "ViTMicro", "ViTSmall", "ViTTiny",
           "conv_implementation", "make_encoder"]


def make_encoder(model_config, image_size: int, axis_name: str | None, dtype: Any,
                 gather_axis: str | None = None) -> nn.Module:
  """The encoder ``model_config.encoder`` names. ResNets take the stem, remat and synchronise BN over ``axis_name``;
  ViTs take the patch size, position embeddings (learned ones made for ``image_size`` crops), initialisation,
  qkv bias, drop path, pooling, remat, scan_layers, class token, registers, LayerScale and feed-forward of
  ``model_config`` (a SwiGLU one as wide as DINOv2's: ``vit.swiglu_mlp_ratio``), and ``gather_axis`` (an FSDP step's blocks gather their own parameters: ``ViT.gather_axis``)."""
  name = model_config.encoder
  m = model_config
  if name in VITS:
    extra = {"mlp_ratio": swiglu_mlp_ratio(VITS[name].keywords["dim"])} if m.mlp == "swiglu" else {}
    return VITS[name](patch_size=m.patch_size, base_grid=image_size // m.patch_size, qkv_bias=m.qkv_bias,
                      pos_embed=m.pos_embed, weight_init=m.weight_init, drop_path_rate=m.drop_path_rate,
                      drop_path_uniform=m.drop_path_uniform, pool=m.pool, **extra,
                      remat=m.remat, scan_layers=m.scan_layers, dtype=dtype, class_token=m.class_token,
                      num_registers=m.num_registers, layer_scale=m.layer_scale, mlp=m.mlp, gather_axis=gather_axis)
  return RESNETS[name](stem=model_config.stem, axis_name=axis_name, dtype=dtype,
                       zero_init_residual=model_config.zero_init_residual,
                       conv=conv_implementation(model_config.conv), remat=model_config.remat,
                       padding=model_config.padding)


def conv_implementation(choice: str) -> str:
  """"auto" -> "cpu" (jaxssl.models.conv's backward pass) on the CPU backend, XLA's own convolution elsewhere."""
  if choice == "auto":
    return "cpu" if jax.default_backend() == "cpu" else "xla"
  if choice == "cpu" and jax.default_backend() != "cpu":
    logging.warning("model.conv='cpu' on the %s backend: correct but slower than XLA's own convolution there",
                    jax.default_backend())
  return choice

