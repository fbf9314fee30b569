import numpy as np

from jaxssl import evaluate


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
  accuracy = evaluate.knn_accuracy(train_x, train_y, test_x, train_y[test_idx], num_classes=5, k=20)
  assert accuracy == 1.0


def test_knn_on_random_labels_is_near_chance():
  rng = np.random.default_rng(0)
  train_x, test_x = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
  accuracy = evaluate.knn_accuracy(train_x, rng.integers(0, 4, 500), test_x, rng.integers(0, 4, 500), 4, k=50)
  assert 0.15 < accuracy < 0.35


def test_knn_weights_votes_by_similarity():
  # Two very close neighbours of class 1 outvote three far ones of class 0 when the temperature is small.
  train = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [-0.1, 1.0], [0.1, 1.0]])
  labels = np.array([1, 1, 0, 0, 0])
  query = np.array([[1.0, 0.05]])
  assert evaluate.knn_predict(train, labels, query, 2, k=5, temperature=0.1)[0] == 1
  assert evaluate.knn_predict(train, labels, query, 2, k=5, temperature=100.0)[0] == 0
