"""MLP projector and predictor heads, DINO's head, SwAV's prototypes, and the networks that join them to an
encoder."""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  """Linear layers with BatchNorm and ReLU between them.

  ``hidden_dims`` are followed by BN (unless ``use_bn`` is False) and ReLU (or GELU); the last layer
  (``output_dim``) is linear, optionally followed by a
  BN without learned scale/shift (SimCLR v2 / solo-learn style, off by default).

  SimCLR: hidden (2048,), output 128. BYOL: hidden (4096,), output 256, for projector and predictor alike.
  VICReg's expander: hidden (8192, 8192), output 8192.
  """
  hidden_dims: Sequence[int]
  output_dim: int
  axis_name: str | None = None
  last_bn: bool = False
  use_bn: bool = True
  activation: str = "relu"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = True) -> jnp.ndarray:
    activation = {"relu": nn.relu, "gelu": lambda y: nn.gelu(y, approximate=False)}[self.activation]
    for width in self.hidden_dims:
      x = nn.Dense(width, use_bias=not self.use_bn, dtype=self.dtype)(x)
      if self.use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=self.dtype,
                         axis_name=self.axis_name if train else None)(x)
      x = activation(x)
    x = nn.Dense(self.output_dim, dtype=self.dtype)(x)
    if self.last_bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, use_scale=False,
                       use_bias=False, dtype=self.dtype, axis_name=self.axis_name if train else None)(x)
    return x.astype(jnp.float32)


class LinearProbe(nn.Module):
  """A linear classifier on frozen features: [N, D] -> logits [N, num_classes]."""
  num_classes: int

  @nn.compact
  def __call__(self, features: jnp.ndarray) -> jnp.ndarray:
    return nn.Dense(self.num_classes, name="head")(features)


class SSLNetwork(nn.Module):
  """encoder -> projector (-> predictor): the joint-embedding methods' model.

  Returns (h, z, p): representation [N, R], projection [N, P] and prediction [N, P] (None without predictor or
  when ``with_predictor`` is False, as for an EMA target network).
  """
  encoder: nn.Module
  projector: nn.Module
  predictor: nn.Module | None = None

  def __call__(self, x: jnp.ndarray, train: bool = True, with_predictor: bool = True):
    h = self.encoder(x, train=train)
    z = self.projector(h, train=train)
    p = self.predictor(z, train=train) if (self.predictor is not None and with_predictor) else None
    return h, z, p

  def embed(self, x: jnp.ndarray) -> jnp.ndarray:
    """Frozen-encoder features for evaluation (BatchNorm in inference mode)."""
    return self.encoder(x, train=False)


class PrototypeNetwork(nn.Module):
  """encoder -> projector -> scores against learned prototypes (SwAV, Caron et al. 2020).

  Returns (h, z, scores): representation [N, R], projection [N, P] and cosine scores [N, K]. With ``frozen``
  (a traced bool is fine) the prototypes get no gradient through the scores (SwAV freezes them for the first
  iterations); ``score`` scores other vectors (SwAV's queue) against them.
  """
  encoder: nn.Module
  projector: nn.Module
  prototypes: nn.Module

  def __call__(self, x: jnp.ndarray, train: bool = True, frozen: jnp.ndarray | bool = False):
    h = self.encoder(x, train=train)
    z = self.projector(h, train=train)
    return h, z, self.prototypes(z, frozen=frozen)

  def score(self, z: jnp.ndarray) -> jnp.ndarray:
    return self.prototypes(z)

  def embed(self, x: jnp.ndarray) -> jnp.ndarray:
    """Frozen-encoder features for evaluation (BatchNorm in inference mode)."""
    return self.encoder(x, train=False)


class Prototypes(nn.Module):
  """SwAV's prototypes: cosine scores between the L2-normalised input and K L2-normalised prototype vectors.

  The official code renormalises the weights in place every step; normalising inside the forward pass gives the
  same scores. With ``frozen`` True the prototypes get no gradient. Returns [N, K].
  """
  num_prototypes: int

  @nn.compact
  def __call__(self, z: jnp.ndarray, frozen: jnp.ndarray | bool = False) -> jnp.ndarray:
    w = self.param("prototypes", nn.initializers.lecun_normal(), (self.num_prototypes, z.shape[-1]))
    w = jnp.where(frozen, jax.lax.stop_gradient(w), w)
    return cosine_scores(z, w)


def cosine_scores(z: jnp.ndarray, prototypes: jnp.ndarray) -> jnp.ndarray:
  """[N, D] x [K, D] -> [N, K] cosine similarities."""
  unit = lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  return unit(z.astype(jnp.float32)) @ unit(prototypes).T


class DINOHead(nn.Module):
  """DINO's projection head (Caron et al. 2021, arXiv:2104.14294, official code with norm_last_layer=True):
  MLP (GELU, no BN) to a bottleneck, L2 normalisation, then a weight-normalised linear layer with unit norms,
  i.e. cosine scores against ``out_dim`` learned directions. Returns logits [N, out_dim] in [-1, 1].

  ``norm_last_layer=False``: the weight-normalised layer's norms are learned too (``last_layer_norm`` [out_dim,
  1], starting at 1, as torch's ``weight_g``): DINOv2's ``DINOHead`` and DINO's ``--norm_last_layer false``."""
  hidden_dims: Sequence[int]
  bottleneck_dim: int
  out_dim: int
  dtype: Any = jnp.float32
  norm_last_layer: bool = True

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = True) -> jnp.ndarray:
    x = MLP(self.hidden_dims, self.bottleneck_dim, use_bn=False, activation="gelu", dtype=self.dtype)(x, train)
    last = self.param("last_layer", nn.initializers.truncated_normal(0.02), (self.out_dim, self.bottleneck_dim))
    scores = cosine_scores(x, last)
    if self.norm_last_layer:
      return scores
    norms = self.param("last_layer_norm", nn.initializers.ones, (self.out_dim, 1))
    return scores * norms[:, 0].astype(scores.dtype)


class Classifier(nn.Module):
  """encoder -> linear head: [N, H, W, C] normalised images -> logits [N, num_classes] (fine-tuning).

  The head is initialised as MAE's fine-tuning head (``trunc_normal_(std=2e-5)``, zero bias; ``head_init_std``
  0: zeros). A ViT encoder takes per-example ``drop_keys`` for stochastic depth; a ResNet ignores them.
  """
  encoder: nn.Module
  num_classes: int
  head_init_std: float = 2e-5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray, train: bool = False, drop_keys: jnp.ndarray | None = None) -> jnp.ndarray:
    if hasattr(self.encoder, "drop_path_rate"):
      features = self.encoder(x, train=train, drop_keys=drop_keys)
    else:
      features = self.encoder(x, train=train)
    init = (nn.initializers.truncated_normal(self.head_init_std) if self.head_init_std > 0
            else nn.initializers.zeros)
    return nn.Dense(self.num_classes, kernel_init=init, dtype=self.dtype, name="head")(features).astype(jnp.float32)

  def embed(self, x: jnp.ndarray) -> jnp.ndarray:
    """The encoder's features (for kNN and ``load_encoder``)."""
    return self.encoder(x, train=False)
