import numpy as np
import pytest

from jaxssl.engine import evaluation


def _clusters(n_per_class, num_classes, dim, spread, seed):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(num_classes, dim)) * 5
  labels = np.repeat(np.arange(num_classes), n_per_class)
  return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


def test_knn_on_separable_clusters_is_perfect():
  train_x, train_y = _clusters(60, 5, 16, 0.3, seed=0)
  rng = np.random.default_rng(1)
  test_idx = rng.choice(len(train_x), 50, replace=False)
  test_x = train_x[test_idx] + 0.05 * rng.normal(size=(50, 16))
  accuracy = evaluation.knn_accuracy(train_x, train_y, test_x, train_y[test_idx], num_classes=5, k=20)
  assert accuracy == 1.0


def test_knn_on_random_labels_is_near_chance():
  rng = np.random.default_rng(0)
  train_x, test_x = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
  accuracy = evaluation.knn_accuracy(train_x, rng.integers(0, 4, 500), test_x, rng.integers(0, 4, 500), 4, k=50)
  assert 0.15 < accuracy < 0.35


def test_knn_weights_votes_by_similarity():
  # Two very close neighbours of class 1 outvote three far ones of class 0 when the temperature is small.
  train = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [-0.1, 1.0], [0.1, 1.0]])
  labels = np.array([1, 1, 0, 0, 0])
  query = np.array([[1.0, 0.05]])
  assert evaluation.knn_predict(train, labels, query, 2, k=5, temperature=0.1)[0] == 1
  assert evaluation.knn_predict(train, labels, query, 2, k=5, temperature=100.0)[0] == 0


def test_linear_probe_on_separable_clusters_is_perfect():
  train_x, train_y = _clusters(100, 6, 12, 0.5, seed=0)
  test_x, test_y = _clusters(20, 6, 12, 0.5, seed=0)        # same centres (same seed), fresh draws below
  rng = np.random.default_rng(3)
  test_x = test_x + 0.1 * rng.normal(size=test_x.shape)
  result = evaluation.linear_probe_accuracy(train_x, train_y, test_x, test_y, num_classes=6, epochs=10, lr=0.1,
                                          batch_size=64)
  assert result["top1"] == 1.0 and result["top5"] == 1.0


def test_linear_probe_on_random_labels_is_near_chance_and_top5_counts_ranks():
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(600, 8)), rng.integers(0, 10, 600)
  result = evaluation.linear_probe_accuracy(x[:400], y[:400], x[400:], y[400:], num_classes=10, epochs=5)
  assert result["top1"] < 0.25 and 0.3 < result["top5"] < 0.7
  logits = np.array([[0.0, 1.0, 2.0], [3.0, 2.0, 1.0]])
  assert evaluation.topk_accuracy(logits, np.array([1, 1]), 1) == 0.0
  assert evaluation.topk_accuracy(logits, np.array([1, 1]), 2) == 1.0


def test_linear_probe_with_augmented_epochs_uses_them():
  train_x, train_y = _clusters(50, 3, 4, 0.3, seed=1)
  calls = []

  def augmented(epoch):
    calls.append(epoch)
    return train_x + 0.01 * epoch, train_y

  result = evaluation.linear_probe_accuracy(train_x, train_y, train_x, train_y, 3, epochs=3, batch_size=50,
                                          augmented_epochs=augmented)
  assert calls == [1, 2] and result["top1"] == 1.0


def test_embed_over_a_mesh_matches_one_device():
  import jax
  import jax.numpy as jnp

  from jaxssl import data
  from helpers import mesh

  source = data.synthetic(37, size=8, channels=1)
  weights = jnp.asarray(np.random.default_rng(0).normal(size=(64, 5)), jnp.float32)
  apply_fn = lambda w, x: x.reshape(x.shape[0], -1) @ w
  plain, labels = evaluation.embed(apply_fn, weights, source, batch_size=16)
  sharded, labels8 = evaluation.embed(apply_fn, weights, source, batch_size=16, mesh=mesh(8))
  assert plain.shape == (37, 5)
  np.testing.assert_allclose(plain, sharded, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(labels, source.labels)
  np.testing.assert_array_equal(labels8, source.labels)
  augmented, _ = evaluation.embed(apply_fn, weights, source, batch_size=16, augment_key=jax.random.key(0))
  assert augmented.shape == (37, 5) and not np.allclose(augmented, plain)


def test_evaluator_compiles_once_per_run():
  """A run's periodic evaluations reuse the first one's compiled feature function."""
  import jax

  from jaxssl import data, evals
  from jaxssl.engine import parallel, train_step
  from helpers import mesh
  from tiny import tiny_config

  config = tiny_config("simclr")
  dataset = data.load(config.data)
  trainer = train_step.build(config, total_steps=3)
  m = mesh(8)
  state = parallel.replicate(train_step.init_state(trainer, jax.random.key(0), 1), m)
  evaluator = evals.Evaluator(trainer, m)
  first = evaluator.evaluate(state, dataset)
  compiled = evaluator.compiled.features_fn._cache_size()
  assert evaluator.evaluate(state, dataset) == first
  assert evaluator.compiled.features_fn._cache_size() == compiled


def test_evaluators_are_checked_by_name():
  from jaxssl import evals
  from jaxssl.common.config_checks import ConfigError
  from tiny import tiny_config

  config = tiny_config("simclr")
  evals.check(config)
  config.eval.evaluators = ("knn", "nosuch")
  with pytest.raises(ConfigError, match=r"^config.eval.evaluators=\('knn', 'nosuch'\): unknown evaluator 'nosuch'"):
    evals.check(config)
  config.eval.evaluators = ("top1",)
  with pytest.raises(ConfigError, match=r"'top1' scores a classifier's logits; method.name='simclr' has none"):
    evals.check(config)
  classifier = tiny_config("classifier")
  assert tuple(classifier.eval.evaluators) == ("top1",)
  evals.check(classifier)


def test_a_new_evaluator_is_a_module_and_a_name(monkeypatch):
  """A registered evaluator runs where the config names it, shares the one pass of features, and the evaluators
  the config leaves out do not run."""
  import types

  import jax

  from jaxssl import data, evals
  from jaxssl.engine import train_step
  from tiny import tiny_config

  seen = []

  def evaluate(ctx):
    seen.append(ctx.final)
    return {"test_examples": float(len(ctx.features["test_labels"]))}

  monkeypatch.setitem(evals.EVALUATORS, "count", None)
  evals.register("count", types.SimpleNamespace(evaluate=evaluate))
  config = tiny_config("simclr")
  config.eval.evaluators = ("count", "knn")
  evals.check(config)
  dataset = data.load(config.data)
  trainer = train_step.build(config, total_steps=3, num_classes=dataset.num_classes)
  state = train_step.init_state(trainer, jax.random.key(0), 1)
  scores = evals.Evaluator(trainer).evaluate(state, dataset, final=True)
  assert list(scores) == ["test_examples", "knn_accuracy"] and seen == [True]
  assert scores["test_examples"] == len(dataset.test)
  with pytest.raises(TypeError, match="evaluator 'bad' lacks evaluate"):
    evals.register("bad", types.SimpleNamespace())
