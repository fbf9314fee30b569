import gzip

import ml_collections
import numpy as np
import pytest

from jaxssl import data
from jaxssl.data import idx


def _write_idx(path, array, compress):
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  payload = header + array.astype(np.uint8).tobytes()
  with (gzip.open if compress else open)(path, "wb") as f:
    f.write(payload)


def _write_fashion_mnist(directory, n_train=12, n_test=6, compress=True):
  rng = np.random.default_rng(0)
  arrays = {
      "train_images": rng.integers(0, 256, (n_train, 28, 28)), "train_labels": rng.integers(0, 10, n_train),
      "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": rng.integers(0, 10, n_test)}
  for key, stem in idx.FASHION_MNIST_FILES.items():
    _write_idx(str(directory / (stem + (".gz" if compress else ""))), arrays[key], compress)
  return arrays


def _idx_config(directory):
  return ml_collections.ConfigDict({"source": "idx", "data_dir": str(directory), "cache": False})


@pytest.mark.parametrize("compress", [True, False])
def test_reads_fashion_mnist_idx(tmp_path, compress):
  arrays = _write_fashion_mnist(tmp_path, compress=compress)
  dataset = data.load(_idx_config(tmp_path))
  images, labels = dataset.train.read(np.arange(12))
  assert images.shape == (12, 28, 28, 1) and images.dtype == np.uint8 and labels.dtype == np.int32
  np.testing.assert_array_equal(images[..., 0], arrays["train_images"])
  np.testing.assert_array_equal(dataset.test.read(np.arange(6))[1], arrays["test_labels"])
  assert dataset.eval_train is dataset.train and dataset.num_classes == 10


def test_malformed_and_missing_files_give_data_errors(tmp_path):
  config = _idx_config(tmp_path / "absent")
  with pytest.raises(data.DataError, match="config.data.data_dir="):
    data.load(config)
  config.data_dir = str(tmp_path)
  with pytest.raises(data.DataError, match="has no train-images"):
    data.load(config)
  _write_fashion_mnist(tmp_path)
  (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc"))
  with pytest.raises(data.DataError, match="header says"):
    data.load(config)


def _take(pipeline, n):
  return [next(pipeline) for _ in range(n)]


@pytest.mark.parametrize("prefetch", [0, 2])
def test_pipeline_is_deterministic_reshuffled_and_split_across_processes(prefetch):
  source = data.synthetic(64, size=8)
  with data.Pipeline(source, 16, seed=3, prefetch=prefetch) as p, data.Pipeline(source, 16, 3, prefetch=0) as q:
    whole, again = _take(p, 8), _take(q, 8)
  for a, b in zip(whole, again):
    np.testing.assert_array_equal(a["image"], b["image"])
  # One epoch (4 batches) covers each example once; the next epoch is another order.
  epoch0 = np.concatenate([b["image"] for b in whole[:4]]).reshape(64, -1)
  assert len(np.unique(epoch0, axis=0)) == len(np.unique(source.images.reshape(64, -1), axis=0))
  assert not np.array_equal(epoch0, np.concatenate([b["image"] for b in whole[4:]]).reshape(64, -1))
  # Two processes each read a disjoint half of every global batch; together exactly the one-process batch.
  halves = []
  for process in (0, 1):
    with data.Pipeline(source, 16, 3, process_index=process, process_count=2, prefetch=prefetch) as p:
      halves.append(_take(p, 8))
  for step in range(8):
    assert halves[0][step]["image"].shape[0] == 8
    for key in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([halves[0][step][key], halves[1][step][key]]),
                                    whole[step][key])


def test_each_process_reads_only_its_half():
  class Recording(data.ArraySource):
    def read(self, indices):
      self.seen.extend(int(i) for i in indices)
      return super().read(indices)

  seen = []
  for process in (0, 1):
    source = Recording(data.synthetic(64, size=8).images)
    source.seen = []
    with data.Pipeline(source, 16, seed=0, process_index=process, process_count=2, prefetch=0) as p:
      _take(p, 4)                                   # one epoch
    seen.append(set(source.seen))
  assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 64


def test_pipeline_resumes_mid_epoch_exactly():
  source = data.synthetic(80, size=8)
  with data.Pipeline(source, 16, seed=5, prefetch=2) as p:
    reference = _take(p, 9)                        # 5 batches per epoch: crosses into the second epoch
  with data.Pipeline(source, 16, seed=5, prefetch=2) as p:
    _take(p, 3)
    saved = p.state()
  assert saved["position"] == 3
  with data.Pipeline(source, 16, seed=5, position=saved["position"], prefetch=2) as p:
    resumed = _take(p, 6)
  for a, b in zip(reference[3:], resumed):
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["label"], b["label"])


def test_pipeline_applies_transform_and_reraises_reader_errors():
  source = data.synthetic(64, size=8)
  with data.Pipeline(source, 16, seed=0, transform=lambda b: b["label"].sum()) as p:
    assert int(next(p)) == int(_take(data.Pipeline(source, 16, 0, prefetch=0), 1)[0]["label"].sum())

  class Broken(data.ArraySource):
    def read(self, indices):
      raise data.DataError("cannot read image 'x.png'")

  with data.Pipeline(Broken(source.images), 16, seed=0) as p:
    with pytest.raises(data.DataError, match="x.png"):
      next(p)


def test_batch_larger_than_split():
  with pytest.raises(data.DataError, match="config.train.batch_size=128"):
    data.Pipeline(data.synthetic(64, size=8), 128, seed=0)


# ----------------------------------------------------------------------------------------------------------------
# TFDS (tfds.testing.mock_data: no network, no files).


def _tfds_config(**overrides):
  config = ml_collections.ConfigDict({
      "source": "tfds", "dataset": "fashion_mnist", "data_dir": "", "train_split": "train",
      "eval_train_split": "", "test_split": "test", "image_size": 0, "cache": False, "crop_on": "auto"})
  config.update(overrides)
  return config


def test_tfds_source_reads_through_data_source():
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = data.load(_tfds_config())
    reference = tfds.data_source("fashion_mnist", split="train")
    images, labels = dataset.train.read([3, 0, 7])
    assert images.shape == (3, 28, 28, 1) and images.dtype == np.uint8 and labels.dtype == np.int32
    np.testing.assert_array_equal(images[1], reference[0]["image"])
    assert int(labels[2]) == int(reference[7]["label"])
    assert len(dataset.train) == 40 and dataset.num_classes == 10 and dataset.train.labeled
    cached = data.load(_tfds_config(cache=True))
    np.testing.assert_array_equal(cached.train.read([3, 0, 7])[0], images)
    # Pipeline over the TFDS source: two processes see disjoint halves of the same global batch.
    halves = [next(data.Pipeline(dataset.train, 8, 0, process_index=i, process_count=2, prefetch=0))
              for i in (0, 1)]
    whole = next(data.Pipeline(dataset.train, 8, 0, prefetch=0))
    np.testing.assert_array_equal(np.concatenate([h["image"] for h in halves]), whole["image"])
    # The host crops read the encoded images (TFDS's SkipDecoding) and decode them themselves.
    handles, handle_labels = dataset.train.handles([3, 0, 7])
    assert all(isinstance(h, bytes) for h in handles)
    np.testing.assert_array_equal(np.asarray(data.host_crops.open_image(handles[1]))[..., None], images[1])
    np.testing.assert_array_equal(handle_labels, labels)


def test_tfds_unlabelled_split_and_resizing():
  import tensorflow_datasets as tfds

  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    dataset = data.load(_tfds_config(dataset="stl10", train_split="unlabelled", eval_train_split="train",
                                     image_size=32))
    images, labels = dataset.train.read([0, 1])
    assert images.shape == (2, 32, 32, 3) and np.all(labels == -1) and not dataset.train.labeled
    assert dataset.eval_train.labeled and dataset.eval_train is not dataset.train


def test_tfds_errors_say_what_to_run(tmp_path):
  with pytest.raises(data.DataError, match="config.data.dataset='no_such_dataset' is not a TFDS dataset"):
    data.load(_tfds_config(dataset="no_such_dataset", data_dir=str(tmp_path)))
  with pytest.raises(data.DataError, match="not prepared.*python -m jaxssl.data.prepare fashion_mnist"):
    data.load(_tfds_config(data_dir=str(tmp_path)))


# ----------------------------------------------------------------------------------------------------------------
# Image folders and numpy files.


def _folder_config(directory, **overrides):
  config = ml_collections.ConfigDict({
      "source": "folder", "data_dir": str(directory), "train_split": "train", "eval_train_split": "",
      "test_split": "test", "image_size": 16, "cache": False, "mean": (0.5, 0.5, 0.5), "crop_on": "auto"})
  config.update(overrides)
  return config


def test_image_folder_with_and_without_classes(tmp_path):
  from PIL import Image

  rng = np.random.default_rng(0)
  for split in ("train", "test"):
    for name in ("cat", "dog"):
      (tmp_path / split / name).mkdir(parents=True)
      for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3)).astype(np.uint8)).save(tmp_path / split / name / f"{i}.png")
  (tmp_path / "loose").mkdir()
  for i in range(4):
    Image.fromarray(rng.integers(0, 256, (10, 10)).astype(np.uint8)).save(tmp_path / "loose" / f"{i}.jpg")
  dataset = data.load(_folder_config(tmp_path))
  images, labels = dataset.train.read(np.arange(6))
  assert images.shape == (6, 16, 16, 3) and list(labels) == [0, 0, 0, 1, 1, 1] and dataset.num_classes == 2
  loose = data.load(_folder_config(tmp_path, train_split="loose", eval_train_split="train"))
  images, labels = loose.train.read(np.arange(4))
  assert images.shape == (4, 16, 16, 3) and np.all(labels == -1) and not loose.train.labeled
  with pytest.raises(data.DataError, match="config.data.data_dir"):
    data.load(_folder_config(tmp_path, train_split="nothing_here"))


def test_numpy_file_source(tmp_path):
  rng = np.random.default_rng(0)
  path = tmp_path / "arrays.npz"
  np.savez(path, train_images=rng.integers(0, 256, (10, 8, 8, 3)).astype(np.uint8),
           test_images=rng.integers(0, 256, (4, 8, 8, 3)).astype(np.uint8), test_labels=np.arange(4) % 2)
  dataset = data.load(ml_collections.ConfigDict({
      "source": "numpy", "data_dir": str(path), "train_split": "train", "eval_train_split": "",
      "test_split": "test", "cache": True}))
  assert len(dataset.train) == 10 and not dataset.train.labeled and dataset.eval_train is None
  assert dataset.test.labeled and dataset.num_classes == 2
  with pytest.raises(data.DataError, match="no array 'val_images'"):
    data.load(ml_collections.ConfigDict({"source": "numpy", "data_dir": str(path), "train_split": "val",
                                         "eval_train_split": "", "test_split": "", "cache": False}))


def _numpy_config(path, **overrides):
  return ml_collections.ConfigDict({"source": "numpy", "data_dir": str(path), "train_split": "train",
                                    "eval_train_split": "", "test_split": "", "cache": False, **overrides})


@pytest.mark.parametrize("arrays,message", [
    ({"train_labels": np.linspace(0, 1, 6)}, r"split 'train': labels must be integers; got float64"),
    ({"train_labels": np.array(["a", "b", "c", "d", "e", "f"])}, r"labels must be integers; got <U1"),
    ({"train_labels": np.array([0, 1, -1, 2, 0, 1])}, r"'train_labels' has 1 negative labels among 6"),
    ({"train_labels": np.array([0, 1, None, 2, 0, 1], dtype=object)}, r"array 'train_labels' holds Python objects"),
])
def test_npz_contents_are_checked(tmp_path, arrays, message):
  path = tmp_path / "arrays.npz"
  np.savez(path, train_images=np.zeros((6, 4, 4, 1), np.uint8), **arrays)
  with pytest.raises(data.DataError, match=message):
    data.load(_numpy_config(path))


def test_a_file_that_is_not_an_npz_gets_no_pickle_advice(tmp_path):
  path = tmp_path / "random.npz"
  path.write_bytes(np.random.default_rng(0).bytes(1000))
  with pytest.raises(data.DataError, match=r"is not a readable .npz file \((not an .npz archive|.*)\); write one") as e:
    data.load(_numpy_config(path))
  assert "allow_pickle" not in str(e.value)


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
  from PIL import Image

  folder = tmp_path / "train" / "a"
  folder.mkdir(parents=True)
  Image.fromarray(np.full((8, 8), 32896, np.uint16)).save(folder / "mid.png")   # 128 x 257: mid grey
  source = data.FolderSource(str(tmp_path / "train"), size=8, channels=1)
  images, _ = source.read([0])
  assert images.dtype == np.uint8 and np.all(images == 128)


def test_class_folders_must_match_between_splits(tmp_path):
  from PIL import Image

  for split, classes in (("train", ("cat", "dog")), ("test", ("cat", "fox"))):
    for name in classes:
      (tmp_path / split / name).mkdir(parents=True)
      Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / name / "x.png")
  config = ml_collections.ConfigDict({"source": "folder", "data_dir": str(tmp_path), "train_split": "train",
                                      "eval_train_split": "", "test_split": "test", "cache": False,
                                      "image_size": 8, "mean": (0.5, 0.5, 0.5)})
  with pytest.raises(data.DataError, match=r"config.data.test_split='test': its class folders differ from "
                                           r"config.data.train_split's \(e.g. dog, fox\)"):
    data.load(config)


def test_splits_are_checked_against_the_config():
  from jaxssl.schema import defaults

  config = defaults.get_config("simclr")
  grey, rgb = data.synthetic(64, size=8, channels=1), data.synthetic(16, size=8, channels=3)
  with pytest.raises(data.DataError, match=r"config.data.test_split='test': its images have 3 channels, the "
                                           r"train split's 1"):
    data.check_against_config(data.Dataset(grey, grey, rgb, 10), config)
  config.data.mean, config.data.std = (0.5, 0.5, 0.5), (0.2, 0.2, 0.2)
  with pytest.raises(data.DataError, match=r"config.data.mean=\(0.5, 0.5, 0.5\): needs one value per channel; "
                                           r"the images have 1"):
    data.check_against_config(data.Dataset(grey, grey, grey, 10), config)
  config.data.mean, config.data.std = (0.5,), (0.2,)
  with pytest.raises(data.DataError, match=r"config.train.batch_size=256: larger than the train split \(64"):
    data.check_against_config(data.Dataset(grey, grey, grey, 10), config)
