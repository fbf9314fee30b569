"""Evaluation of frozen representations: weighted kNN (Wu et al. 2018), as solo-learn and lightly report it."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from jaxssl import augment


def embed(apply_fn, variables, images: np.ndarray, batch_size: int, mesh: Mesh | None = None,
          preprocess=lambda x: x) -> np.ndarray:
  """Features of ``images`` (uint8 [N, H, W, C]) in batches; returns float32 [N, D] on the host.

  With a mesh, each batch is split over its devices (the batch is padded to a multiple of the device count).
  """
  from jaxssl.train import shard_batch  # local import: train imports this module's callers

  @jax.jit
  def features(variables, images):
    return apply_fn(variables, preprocess(augment.to_float(images)))

  num_devices = 1 if mesh is None else mesh.size
  outputs = []
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    pad = (-len(chunk)) % num_devices
    padded = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)]) if pad else chunk
    x = padded if mesh is None else shard_batch({"image": padded}, mesh)["image"]
    outputs.append(np.asarray(features(variables, x))[:len(chunk)])
  return np.concatenate(outputs).astype(np.float32)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_chunk(test, train, train_labels, k: int, temperature: float, num_classes: int):
  similarity = test @ train.T                                        # [c, N] cosine similarities
  top_sim, top_idx = jax.lax.top_k(similarity, k)                    # [c, k]
  weights = jnp.exp(top_sim / temperature)
  votes = jax.nn.one_hot(train_labels[top_idx], num_classes) * weights[..., None]
  return jnp.argmax(votes.sum(axis=1), axis=-1)


def knn_predict(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                num_classes: int, k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> np.ndarray:
  """Weighted kNN: the k most cosine-similar train features vote for their label with weight exp(sim / T).

  Args:
    train_features: [N, D]; train_labels: int [N]; test_features: [M, D].
  Returns:
    int [M] predicted labels.
  """
  def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

  train = jnp.asarray(unit(train_features))
  labels = jnp.asarray(train_labels)
  test = unit(test_features)
  k = min(k, len(train_features))
  predictions = [np.asarray(_knn_chunk(jnp.asarray(test[s:s + chunk]), train, labels, k, temperature,
                                       num_classes)) for s in range(0, len(test), chunk)]
  return np.concatenate(predictions)


def knn_accuracy(train_features, train_labels, test_features, test_labels, num_classes: int, k: int = 200,
                 temperature: float = 0.1) -> float:
  """Top-1 accuracy of weighted kNN, in [0, 1]."""
  predictions = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
  return float(np.mean(predictions == np.asarray(test_labels)))


def knn_accuracy_of(trainer, state, dataset, mesh: Mesh | None = None) -> float:
  """kNN test accuracy of the online encoder of a train state (BatchNorm with running statistics)."""
  from jaxssl.train import normalize

  config = trainer.config
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  size = trainer.recipes[0].size

  def preprocess(x):
    if x.shape[1] != size:
      x = jax.vmap(lambda im: augment.crop_and_resize(im, 0.0, 0.0, im.shape[0], im.shape[1], size))(x)
    return normalize(trainer, x)

  apply_fn = functools.partial(trainer.network.apply, method=trainer.network.embed)
  kwargs = dict(batch_size=config.eval.batch_size, mesh=mesh, preprocess=preprocess)
  train_features = embed(apply_fn, variables, dataset.train_images, **kwargs)
  test_features = embed(apply_fn, variables, dataset.test_images, **kwargs)
  return knn_accuracy(train_features, dataset.train_labels, test_features, dataset.test_labels,
                      dataset.num_classes, k=config.eval.knn_k, temperature=config.eval.knn_temperature)
