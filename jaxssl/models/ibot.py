"""iBOT's student and teacher network (Zhou et al. 2022, "iBOT: Image BERT Pre-Training with Online Tokenizer",
arXiv:2111.07832; official ``models/vision_transformer.py`` and ``models/head.py``): a ViT whose masked patches
are replaced by a learned mask token, DINO's head on the class token, and the same head (``shared_head``) or a
second one on every patch token."""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxssl.models.heads import DINOHead
from jaxssl.models.vit import ViT
from jaxssl.ops import masking


class IBOTOutputs(NamedTuple):
  """One view's outputs: ``cls`` [N, D] the encoder's class token; ``cls_logits`` [N, K]; ``patch_logits``
  [N, L, Kp], or [N, S, Kp] for the S patch tokens the call named (``scored``), or None when the patches were
  not scored (local crops); ``features`` [N, F] the encoder's features pooled as its ``pool`` says (what
  ``embed`` returns for unmasked images; the online probe reads them); ``patches`` [N, L, D] the encoder's patch
  tokens (DINOv3's Gram anchoring reads them)."""
  cls: jax.Array
  cls_logits: jax.Array
  patch_logits: jax.Array | None
  features: jax.Array | None = None
  patches: jax.Array | None = None


def pooled(encoder: ViT, tokens) -> jax.Array:
  """[N, F] features from a ViT's tokens, as ``ViT.__call__`` pools them (``encoder.pool``)."""
  if encoder.pool == "global":
    return tokens.pooled
  if encoder.pool == "cls_mean":
    return jnp.concatenate([tokens.cls, tokens.patches.mean(axis=1)], axis=-1)
  return tokens.cls if encoder.pool == "cls" else tokens.patches.mean(axis=1)


def score_patches(head: nn.Module, patches: jax.Array, train: bool = True) -> jax.Array:
  """A head on every patch token: [N, L, D] -> [N, L, K], as one [N * L, D] batch."""
  n, length, dim = patches.shape
  return head(patches.reshape(n * length, dim), train).reshape(n, length, -1)


class IBOTNetwork(nn.Module):
  """[N, H, W, C] normalised images (and an optional [N, L] patch mask) -> ``IBOTOutputs``.

  Attributes:
    encoder: the ViT.
    projector: DINO's head on the class token (named as DINO's, so ``dino.freeze_last_layer`` applies).
    patch_projector: the head on the patch tokens, or None to score them with ``projector`` (shared head, the
      official ViT-S/16 recipe).
  """
  encoder: ViT
  projector: DINOHead
  patch_projector: DINOHead | None = None

  @nn.compact
  def __call__(self, images: jax.Array, masked: jax.Array | None = None, drop_keys: jax.Array | None = None,
               train: bool = False, with_patches: bool = True, scored: jax.Array | None = None) -> IBOTOutputs:
    """``scored``: int32 [N, S] the patch tokens to score (None: all of them). The head treats each token on
    its own, so scoring only the ones the loss reads changes no value and saves the rest of its work."""
    mask_token = self.param("mask_token", nn.initializers.zeros, (1, 1, self.encoder.dim))   # official: zeros
    tokens = self.encoder.tokens(images, drop_keys=drop_keys if train else None, masked=masked,
                                 mask_token=mask_token)
    cls_logits = self.projector(tokens.cls, train)
    patch_logits = None
    if with_patches:
      head = self.projector if self.patch_projector is None else self.patch_projector
      patches = tokens.patches if scored is None else masking.at_tokens(tokens.patches, scored)
      patch_logits = score_patches(head, patches, train)
    return IBOTOutputs(tokens.cls, cls_logits, patch_logits, pooled(self.encoder, tokens), tokens.patches)

  def embed(self, x: jax.Array) -> jax.Array:
    """The encoder's features of full, unmasked images (``model.pool``), for evaluation."""
    return self.encoder(x, train=False)


def student_outputs(network: IBOTNetwork, views: list[jax.Array], masks: list[jax.Array], picks: list[jax.Array],
                    drop_keys: list[jax.Array]) -> list[IBOTOutputs]:
  """The student on every view (for ``model.apply(..., method=student_outputs)``): the two global crops with
  their [N, L] ``masks`` and their patch logits at the tokens ``picks`` [N, S], the local crops unmasked and
  without patch logits; drop path from the per-example ``drop_keys`` of each view."""
  return [network(x, masked=masks[v] if v < 2 else None, drop_keys=drop_keys[v], train=True, with_patches=v < 2,
                  scored=picks[v] if v < 2 else None) for v, x in enumerate(views)]


def teacher_outputs(network: IBOTNetwork, params: dict, images: jax.Array) -> IBOTOutputs:
  """The EMA teacher on an unmasked view, from its parameters alone (the parts the EMA keeps: the encoder and
  the heads, not the mask token), without gradient."""
  params = jax.lax.stop_gradient(params)
  tokens = network.encoder.apply({"params": params["encoder"]}, images, method=ViT.tokens)
  cls_logits = network.projector.apply({"params": params["projector"]}, tokens.cls, False)
  if network.patch_projector is None:
    head, head_params = network.projector, params["projector"]
  else:
    head, head_params = network.patch_projector, params["patch_projector"]
  patch_logits = head.apply({"params": head_params}, tokens.patches,
                            method=lambda module, patches: score_patches(module, patches, False))
  return IBOTOutputs(tokens.cls, cls_logits, patch_logits.astype(jnp.float32))
