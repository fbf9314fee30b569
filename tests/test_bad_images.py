"""Unreadable images never end a run: each is replaced by the next example of the split, in the same batch slot
(so the batches do not depend on processes or resume), warned about once and listed in the workdir; past
data.max_bad_images the run stops with one line. A read that hangs (a FIFO named x.jpg) stops the run with one
line after data.read_timeout_s, and SIGTERM while it hangs saves the state."""

import json
import os
import shutil
import signal
import threading

import numpy as np
import pytest
from PIL import Image

import helpers
from jaxssl import data, train
from jaxssl.data import bad_images
from tiny import tiny_config


def _damage(paths):
  """Four kinds of unreadable file in place of the images at ``paths``: truncated, empty, not an image, a
  broken symlink."""
  truncated, empty, text, link = paths
  with open(truncated, "rb") as f:
    head = f.read(200)
  with open(truncated, "wb") as f:
    f.write(head)
  open(empty, "wb").close()
  with open(text, "w") as f:
    f.write("not an image")
  os.remove(link)
  os.symlink(link + ".gone", link)


@pytest.fixture
def folders(tmp_path):
  """(damaged folder, its twin in which each damaged file is a copy of the image that substitutes it)."""
  root = helpers.jpeg_splits(tmp_path / "damaged", {"train": 16, "test": 8})
  source = data.FolderSource(str(root / "train"), size=32)
  bad = [1, 5, 6, 12]                           # 5 and 6 adjacent: 5's substitute (6) is bad too, so 7 stands in
  twin = tmp_path / "twin"
  shutil.copytree(root, twin)
  substitutes = {1: 2, 5: 7, 6: 7, 12: 13}
  for index, stand_in in substitutes.items():
    shutil.copy(source.paths[stand_in], str(source.paths[index]).replace(str(root), str(twin)))
  _damage([source.paths[i] for i in bad])
  return root, twin, substitutes


def _batches(root, crops, positions, process_index=0, process_count=1):
  source = data.FolderSource(str(root / "train"), size=32)
  source.bad_images = bad_images.BadImages(limit=10)
  pipeline = data.Pipeline(source, 8, seed=3, position=positions[0], process_index=process_index,
                           process_count=process_count, prefetch=0, crops=crops())
  with pipeline:
    return [next(pipeline) for _ in positions], source.bad_images


def test_a_bad_image_is_replaced_by_the_next_example_for_every_process_count_and_on_resume(folders, capsys):
  root, twin, substitutes = folders
  specs = [data.CropSpec(24), data.CropSpec(16, scale=(0.2, 0.5))]
  crops = lambda: data.HostCropper(specs, seed=0, channels=3, workers=2)   # noqa: E731
  twin_source = data.FolderSource(str(twin / "train"), size=32)
  expected_labels = twin_source.labels.copy()
  for index, stand_in in substitutes.items():
    expected_labels[index] = twin_source.labels[stand_in]   # the substitute's label goes with its image
  want, _ = _batches(twin, crops, range(4))
  for batch, position in zip(want, range(4)):
    members = data.global_batch_indices(16, 8, 3, position)
    batch["label"] = expected_labels[members]

  got, register = _batches(root, crops, range(4))
  for a, b in zip(got, want):
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)
  assert len(register.seen) == 4
  err = capsys.readouterr().err
  assert err.count("warning: cannot read image") == 4           # once per file, though met in several steps
  assert "an image next to it in the split stands in for it" in err

  halves = [_batches(root, crops, range(4), process_index=p, process_count=2)[0] for p in (0, 1)]
  resumed, _ = _batches(root, crops, range(2, 4))
  for position in range(4):
    whole = {k: np.concatenate([halves[0][position][k], halves[1][position][k]]) for k in want[position]}
    assert all(np.array_equal(whole[k], want[position][k]) for k in whole)
  for a, b in zip(resumed, want[2:]):
    assert all(np.array_equal(a[k], b[k]) for k in a)

  # Decoded on the device's side (no host crops), the same rule: whole images of the substitutes.
  plain, _ = _batches(root, lambda: None, range(4))
  plain_want, _ = _batches(twin, lambda: None, range(4))
  for a, b in zip(plain, plain_want):
    assert np.array_equal(a["image"], b["image"])


def test_an_image_over_the_decompression_bomb_limit_is_substituted(tmp_path, monkeypatch):
  root = helpers.jpeg_splits(tmp_path, {"train": 8})
  source = data.FolderSource(str(root / "train"), size=32)
  monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)     # every generated image is over twice the limit
  with pytest.raises(data.BadImage, match=r"DecompressionBombError"):
    source.read([0])
  source.bad_images = bad_images.BadImages(limit=1)
  with pytest.raises(data.DataError, match=r"config.data.max_bad_images=1: 2 images cannot be read, the last "):
    source.all()


def _run_config(root, **fields):
  config = tiny_config("simclr", batch_size=8)
  config.data.source, config.data.data_dir, config.data.image_size = "folder", str(root), 32
  config.data.mean, config.data.std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
  config.data.crop_on, config.data.workers = "host", 2
  config.augment.size = 16
  config.train.num_steps, config.train.log_every = 4, 1
  config.eval.knn_at_init, config.eval.online_probe, config.eval.at_end = False, False, False
  for field, value in fields.items():
    section, name = field.split("__")
    config[section][name] = value
  return config


@pytest.mark.slow
def test_a_run_lists_its_bad_images_in_the_workdir_and_stops_past_the_limit(folders, tmp_path, capsys):
  root, _, _ = folders
  workdir = tmp_path / "run"
  results = train.run(_run_config(root), str(workdir))
  assert results["steps"] == 4
  listed = [json.loads(line)["file"] for line in (workdir / "bad_images.jsonl").read_text().splitlines()]
  assert len(listed) == len(set(listed)) >= 1 and all(f.startswith(str(root)) for f in listed)

  with pytest.raises(data.DataError, match=r"config.data.max_bad_images=1: \d images cannot be read \(listed in "
                                           r".*bad_images.jsonl\), the last .*repair it, or raise the limit"):
    train.run(_run_config(root, data__max_bad_images=1), str(tmp_path / "strict"))
  assert (tmp_path / "strict" / "bad_images.jsonl").exists()


@pytest.fixture
def hanging_folder(tmp_path):
  """A JPEG folder in which one 'image' is a FIFO: opening it blocks until a writer comes (a hung mount)."""
  root = helpers.jpeg_splits(tmp_path / "data", {"train": 16, "test": 8})
  fifo = root / "train" / "class_000" / "hangs.jpg"
  os.mkfifo(fifo)
  yield root
  try:                                          # releases the reader still blocked in a worker thread
    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
  except OSError:
    pass


def _first_batch_reading(root, name, seed):
  """The position of the first global batch (of 8) that holds the file ``name``."""
  source = data.FolderSource(str(root / "train"), size=32)
  index = next(i for i, path in enumerate(source.paths) if path.endswith(name))
  return next(p for p in range(100) if index in data.global_batch_indices(len(source), 8, seed, p))


@pytest.mark.slow
def test_a_hung_read_stops_the_run_after_the_timeout_and_sigterm_during_it_saves(hanging_folder, tmp_path,
                                                                                monkeypatch):
  seed = next(s for s in range(20) if _first_batch_reading(hanging_folder, "hangs.jpg", s) > 0)
  hangs_at = _first_batch_reading(hanging_folder, "hangs.jpg", seed)
  workdir = tmp_path / "run"
  config = _run_config(hanging_folder, data__read_timeout_s=2.0, train__num_steps=40)
  config.seed = seed
  with pytest.raises(data.ReadTimeout, match=r"config.data.read_timeout_s=2: .* gave nothing for 2 s \(a hung "
                                             rf"read.*; the state at step {hangs_at} is saved"):
    train.run(config, str(workdir))
  assert (workdir / "checkpoints" / str(hangs_at)).is_dir()
  assert not (workdir / "lock").exists()

  # No timeout: the loop waits, waking to look for SIGTERM, which arrives while the read hangs.
  original = data.Pipeline.next

  def next_then_sigterm(pipeline, *args, **kwargs):
    if pipeline.position == hangs_at:
      threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    return original(pipeline, *args, **kwargs)

  monkeypatch.setattr(data.Pipeline, "next", next_then_sigterm)
  config.data.read_timeout_s = 0.0
  results = train.run(config, str(tmp_path / "patient"))
  assert results["preempted"]
  assert (tmp_path / "patient" / "checkpoints" / str(hangs_at)).is_dir()
  assert not (tmp_path / "patient" / "lock").exists()
