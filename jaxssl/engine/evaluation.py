"""Evaluation of frozen representations, as solo-learn and lightly report it.

- weighted kNN (Wu et al. 2018): cosine similarity, k=200, temperature 0.1, on device in chunks;
- offline linear probe: a linear classifier on frozen features trained with optax (SGD + momentum, cosine
  schedule), with or without augmentation (random resized crop + flip), top-1 and top-5;
- the encoder's features of a whole split (``embed``), sharded over the devices and processes.

The evaluators a run chooses by name (``config.eval.evaluators``) are built from these in ``jaxssl.evals``.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxssl.data import Source
from jaxssl.engine.parallel import shard_batch
from jaxssl.engine.train_step import normalize
from jaxssl.models import LinearProbe
from jaxssl.ops import augment


def _identity(x):
  return x


def features_function(apply_fn: Callable, preprocess: Callable = _identity, mesh: Mesh | None = None) -> Callable:
  """The jitted (variables, images uint8 [B, H, W, C], labels [B], key or None) -> (features [B, D], labels)
  that ``embed`` runs. Built once and passed to ``embed``, it compiles once per input shape for the whole run;
  with ``key`` every image is first randomly cropped and flipped."""

  def features(variables, images, labels, key):
    x = augment.to_float(images)
    if key is not None:
      keys = jax.random.split(key, x.shape[0])

      def crop_flip(k, im):
        k1, k2 = jax.random.split(k)
        return augment.random_flip(k2, augment.random_resized_crop(k1, im, im.shape[0]))

      x = jax.vmap(crop_flip)(keys, x)
    return apply_fn(variables, preprocess(x)), labels

  return jax.jit(features, out_shardings=None if mesh is None else NamedSharding(mesh, P()))


def embed(apply_fn: Callable, variables, source: Source, batch_size: int, mesh: Mesh | None = None,
          preprocess: Callable = _identity, augment_key: jax.Array | None = None,
          features_fn: Callable | None = None, progress: Callable[[int, int], None] | None = None,
          stop: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Features and labels of every example of ``source``: float32 [N, D] and int32 [N], on the host.

  With a mesh, each chunk is split over its devices (and processes: each process reads only its share); the
  features come back replicated. With ``augment_key`` every image is first randomly cropped and flipped
  (the linear probe's training augmentation). ``features_fn``: ``features_function(apply_fn, preprocess,
  mesh)`` built once by the caller (else built here, and compiled, on every call). ``progress(done, total)``
  is called after each chunk. Reads substitute unreadable images and give up after the split's read timeout
  (``Source.read_substituted``); ``stop()`` true ends the pass with ``jaxssl.data.Stopped``.
  """
  features_fn = features_fn or features_function(apply_fn, preprocess, mesh)
  num_devices = 1 if mesh is None else mesh.size
  processes, me = (1, 0) if mesh is None else (jax.process_count(), jax.process_index())
  outputs, labels = [], []
  for start in range(0, len(source), batch_size):
    indices = np.arange(start, min(start + batch_size, len(source)))
    padded = np.concatenate([indices, np.zeros((-len(indices)) % num_devices, indices.dtype)])
    share = len(padded) // processes
    images, chunk_labels = source.read_substituted(padded[me * share:(me + 1) * share], stop=stop)
    batch = {"image": images, "label": chunk_labels}
    if mesh is not None:
      batch = shard_batch(batch, mesh)
    key = None if augment_key is None else jax.random.fold_in(augment_key, start)
    f, y = features_fn(variables, batch["image"], batch["label"], key)
    outputs.append(np.asarray(f)[:len(indices)])
    labels.append(np.asarray(y)[:len(indices)])
    if progress is not None:
      progress(int(indices[-1]) + 1, len(source))
  return np.concatenate(outputs).astype(np.float32), np.concatenate(labels)


# ----------------------------------------------------------------------------------------------------------------
# kNN.


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_chunk(test, train, train_labels, k: int, temperature: float, num_classes: int):
  similarity = test @ train.T                                        # [c, N] cosine similarities
  top_sim, top_idx = jax.lax.top_k(similarity, k)                    # [c, k]
  weights = jnp.exp(top_sim / temperature)
  votes = jax.nn.one_hot(train_labels[top_idx], num_classes) * weights[..., None]
  return jnp.argmax(votes.sum(axis=1), axis=-1)


def _unit(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_predict(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                num_classes: int, k: int = 200, temperature: float = 0.1, chunk: int = 1024) -> np.ndarray:
  """Weighted kNN: the k most cosine-similar train features vote for their label with weight exp(sim / T).

  Args:
    train_features: [N, D]; train_labels: int [N]; test_features: [M, D].
  Returns:
    int [M] predicted labels.
  """
  train = jnp.asarray(_unit(train_features))
  labels = jnp.asarray(train_labels)
  test = _unit(test_features)
  k = min(k, len(train_features))
  predictions = [np.asarray(_knn_chunk(jnp.asarray(test[s:s + chunk]), train, labels, k, temperature,
                                       num_classes)) for s in range(0, len(test), chunk)]
  return np.concatenate(predictions)


def knn_accuracy(train_features, train_labels, test_features, test_labels, num_classes: int, k: int = 200,
                 temperature: float = 0.1) -> float:
  """Top-1 accuracy of weighted kNN, in [0, 1]."""
  predictions = knn_predict(train_features, train_labels, test_features, num_classes, k, temperature)
  return float(np.mean(predictions == np.asarray(test_labels)))


# ----------------------------------------------------------------------------------------------------------------
# Linear probe.


def topk_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of rows whose label is among the k largest logits."""
  k = min(k, logits.shape[-1])
  top = np.argsort(-logits, axis=-1)[:, :k]
  return float(np.mean(np.any(top == np.asarray(labels)[:, None], axis=-1)))


def _standardizer(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  mean = features.mean(axis=0)
  std = features.std(axis=0) + 1e-6
  return mean, std


def train_linear_probe(feature_epochs: Callable[[int], tuple[np.ndarray, np.ndarray]], num_classes: int,
                       epochs: int, lr: float = 0.1, batch_size: int = 256, weight_decay: float = 0.0,
                       seed: int = 0):
  """Trains a LinearProbe with SGD (momentum 0.9, cosine schedule, cross-entropy).

  ``feature_epochs(e)`` gives the (features [N, D], labels [N]) of epoch e: the same arrays every epoch
  without augmentation, fresh augmented ones with. Features are standardised with the first epoch's mean and
  std (a fixed affine map: it conditions SGD and leaves the probe linear). Returns (params, mean, std).
  """
  features, labels = feature_epochs(0)
  mean, std = _standardizer(features)
  n, dim = features.shape
  steps_per_epoch = max(n // batch_size, 1)
  schedule = optax.cosine_decay_schedule(lr, epochs * steps_per_epoch)
  tx = optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(schedule, momentum=0.9))
  probe = LinearProbe(num_classes)
  params = probe.init(jax.random.key(seed), jnp.zeros((1, dim)))
  opt_state = tx.init(params)

  @jax.jit
  def epoch_fn(params, opt_state, x, y, key):
    order = jax.random.permutation(key, x.shape[0])[:steps_per_epoch * batch_size]
    xb = x[order].reshape(steps_per_epoch, -1, dim)
    yb = y[order].reshape(steps_per_epoch, -1)

    def step(carry, batch):
      params, opt_state = carry
      bx, by = batch

      def loss_fn(p):
        logits = probe.apply(p, bx)
        return optax.softmax_cross_entropy_with_integer_labels(logits, by).mean()

      grads = jax.grad(loss_fn)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), (xb, yb))
    return params, opt_state

  key = jax.random.key(seed + 1)
  for e in range(epochs):
    if e > 0:
      features, labels = feature_epochs(e)
    x = jnp.asarray((features - mean) / std)
    params, opt_state = epoch_fn(params, opt_state, x, jnp.asarray(labels), jax.random.fold_in(key, e))
  return params, mean, std


def linear_probe_accuracy(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                          test_labels: np.ndarray, num_classes: int, epochs: int = 30, lr: float = 0.1,
                          batch_size: int = 256, weight_decay: float = 0.0, seed: int = 0,
                          augmented_epochs: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None
                          ) -> dict[str, float]:
  """Top-1 and top-5 test accuracy of a linear probe on frozen features (in [0, 1]).

  Args:
    train_features: [N, D]; train_labels: int [N]; test_features: [M, D]; test_labels: int [M].
    augmented_epochs: if given, epoch e > 0 trains on ``augmented_epochs(e)`` instead of the plain features.
  """
  plain = (train_features, train_labels)
  feature_epochs = (lambda e: plain) if augmented_epochs is None else (
      lambda e: augmented_epochs(e) if e > 0 else plain)
  params, mean, std = train_linear_probe(feature_epochs, num_classes, epochs, lr, batch_size, weight_decay, seed)
  logits = np.asarray(LinearProbe(num_classes).apply(params, jnp.asarray((test_features - mean) / std)))
  return {"top1": topk_accuracy(logits, test_labels, 1), "top5": topk_accuracy(logits, test_labels, 5)}


def knn_accuracy_of_features(features: dict[str, np.ndarray], num_classes: int,
                             eval_config: ml_collections.ConfigDict) -> float:
  """kNN test accuracy of a features dict ({train,test}_{features,labels}) with config.eval's k and T."""
  f = features
  return knn_accuracy(f["train_features"], f["train_labels"], f["test_features"], f["test_labels"], num_classes,
                      k=eval_config.knn_k, temperature=eval_config.knn_temperature)


def linear_probe_of_features(features: dict[str, np.ndarray], num_classes: int,
                             eval_config: ml_collections.ConfigDict, seed: int,
                             augmented_epochs: Callable | None = None) -> dict[str, float]:
  """Linear-probe top-1/top-5 of a features dict with config.eval's linear_* settings."""
  f, ev = features, eval_config
  return linear_probe_accuracy(f["train_features"], f["train_labels"], f["test_features"], f["test_labels"],
                               num_classes, epochs=ev.linear_epochs, lr=ev.linear_lr,
                               batch_size=ev.linear_batch_size, weight_decay=ev.linear_weight_decay, seed=seed,
                               augmented_epochs=augmented_epochs)


# ----------------------------------------------------------------------------------------------------------------
# A train state's encoder.


def encoder_variables(state) -> dict:
  """The variables ``model.apply`` reads of a train state: its online params and BatchNorm statistics."""
  return {"params": state.params, "batch_stats": state.batch_stats}


def encoder_fn(trainer, state) -> tuple[Callable, dict, Callable]:
  """(apply_fn, variables, preprocess) of the online encoder of a train state (BatchNorm in inference mode)."""
  size = trainer.recipes[0].size

  def preprocess(x):
    if x.shape[1] != size:
      x = jax.vmap(lambda im: augment.crop_and_resize(im, 0.0, 0.0, im.shape[0], im.shape[1], size))(x)
    return normalize(trainer, x)

  apply_fn = functools.partial(trainer.model.apply, method=trainer.model.embed)
  return apply_fn, None if state is None else encoder_variables(state), preprocess
