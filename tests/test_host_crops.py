"""Host-side random resized crops of the full image (data.crop_on=host): the boxes' distribution, determinism
whatever the workers, processes or resume point, reduced-size JPEG decoding, and training on 8 devices = 1."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

import helpers
from jaxssl import data
from jaxssl.data import generate, host_crops
from jaxssl.data.host_crops import CropSpec, HostCropper
from jaxssl.engine import train_step
from jaxssl.ops import augment


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
  """24 train and 8 test JPEGs of ImageNet-like shapes (shorter side 40-64 px), 4 classes."""
  return helpers.jpeg_splits(tmp_path_factory.mktemp("jpegs"), {"train": 24, "test": 8})


def test_boxes_cover_the_full_image_with_the_recipes_areas_and_aspect_ratios():
  width, height = 640, 480                                  # 4:3: a centre square would lose a quarter of it
  scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
  rng = np.random.default_rng(0)
  boxes = np.asarray([host_crops.sample_box(rng, width, height, scale, ratio) for _ in range(4000)])
  left, top, w, h = boxes.T
  assert np.all(left >= 0) and np.all(top >= 0) and np.all(left + w <= width) and np.all(top + h <= height)
  areas = w * h / (width * height)                          # fractions of the FULL image
  assert areas.min() >= 0.08 * 0.97 and areas.max() <= 1.0
  assert areas.max() > 0.95                                 # crops up to the whole image (a square: at most 75%)
  aspects = w / h
  assert aspects.min() >= 3 / 4 * 0.98 and aspects.max() <= 4 / 3 * 1.02
  # Every part of the image, corners and the side strips a centre square would drop, is in some crop: every
  # 8 x 8 block holds covered pixels (a corner pixel itself needs left = top = 0 at once: rare, not excluded).
  covered = np.zeros((height, width), bool)
  for l, t, bw, bh in boxes:
    covered[t:t + bh, l:l + bw] = True
  assert covered.reshape(height // 8, 8, width // 8, 8).any(axis=(1, 3)).all()
  assert left.min() == 0 and top.min() == 0 and (left + w).max() == width and (top + h).max() == height
  # Where every draw fits (a square image, aspect 1), the areas are U(scale), as torchvision draws them.
  square = np.asarray([host_crops.sample_box(rng, 400, 400, scale, (1.0, 1.0)) for _ in range(4000)])
  quartiles = np.quantile(square[:, 2] * square[:, 3] / 400**2, [0.25, 0.5, 0.75])
  np.testing.assert_allclose(quartiles, [0.31, 0.54, 0.77], atol=0.03)


def test_box_falls_back_to_the_central_crop_with_the_ratio_clamped():
  # A 10:1 strip: no box with an aspect in [3/4, 4/3] and 50-100% of the area fits.
  box = host_crops.sample_box(np.random.default_rng(0), 1000, 100, (0.5, 1.0), (3 / 4, 4 / 3))
  assert box == ((1000 - 133) // 2, 0, 133, 100)


def test_crop_is_the_box_resized_and_depends_only_on_seed_step_slot_and_view(tmp_path):
  rng = np.random.default_rng(1)
  array = generate.image(rng, 90, 120)
  path = str(tmp_path / "a.png")                            # PNG: lossless, so PIL's reference is exact
  Image.fromarray(array).save(path)
  specs = (CropSpec(32), CropSpec(16, (0.05, 0.4)))
  crops = host_crops.crop_example(path, specs, 3, seed=7, step=3, slot=5)
  for view, (crop, spec) in enumerate(zip(crops, specs)):
    left, top, w, h = host_crops.sample_box(host_crops.view_rng(7, 3, 5, view), 120, 90, spec.scale, spec.ratio)
    expected = Image.fromarray(array).resize((spec.size, spec.size), Image.BILINEAR,
                                             box=(left, top, left + w, top + h))
    np.testing.assert_array_equal(crop, np.asarray(expected))
  # The same from the decoded array (in-memory sources), and other draws at another step, slot or view.
  np.testing.assert_array_equal(host_crops.crop_example(array, specs, 3, 7, 3, 5)[0], crops[0])
  assert not np.array_equal(host_crops.crop_example(path, specs, 3, 7, 4, 5)[0], crops[0])
  assert not np.array_equal(host_crops.crop_example(path, specs, 3, 7, 3, 6)[0], crops[0])
  gray = host_crops.crop_example(path, specs, 1, 7, 3, 5)
  assert gray[0].shape == (32, 32, 1) and gray[1].shape == (16, 16, 1)


def test_large_jpegs_are_decoded_at_a_reduced_size_when_every_crop_allows_it(tmp_path):
  assert host_crops.draft_size(2000, 1600, [(0, 0, 1000, 800)], [100]) == (250, 200)
  assert host_crops.draft_size(2000, 1600, [(0, 0, 1000, 800), (0, 0, 50, 50)], [100, 100]) == (2000, 1600)
  path = str(tmp_path / "big.jpg")
  big = np.asarray(Image.fromarray(generate.image(np.random.default_rng(2), 64, 80)).resize((1600, 1280)))
  Image.fromarray(big).save(path, quality=95)
  seen = []
  original_resize = Image.Image.resize

  def spy(self, *args, **kwargs):
    seen.append(self.size)
    return original_resize(self, *args, **kwargs)

  specs = (CropSpec(24, (0.5, 1.0)), CropSpec(24, (0.5, 1.0)))
  Image.Image.resize = spy
  try:
    crops = host_crops.crop_example(path, specs, 3, seed=0, step=0, slot=0)
  finally:
    Image.Image.resize = original_resize
  assert max(seen)[0] <= 1600 // 8 * 2             # decoded at 1/4 or 1/8 of the width, not in full
  # Against crops of the fully decoded image: the same picture (the DCT-scaled decode is a good downsample).
  boxes = [host_crops.sample_box(host_crops.view_rng(0, 0, 0, v), 1600, 1280, s.scale, s.ratio)
           for v, s in enumerate(specs)]
  full = Image.open(path).convert("RGB")
  for crop, (left, top, w, h) in zip(crops, boxes):
    reference = np.asarray(full.resize((24, 24), Image.BILINEAR, box=(left, top, left + w, top + h)))
    assert np.abs(crop.astype(float) - reference).mean() < 4.0


def test_batches_do_not_depend_on_workers_processes_or_the_resume_point(jpeg_folder):
  source = data.FolderSource(str(jpeg_folder / "train"), size=48)
  specs = (CropSpec(32), CropSpec(32), CropSpec(16, (0.05, 0.4)))

  def batches(workers, process_index=0, process_count=1, position=0, n=4):
    cropper = HostCropper(specs, seed=3, channels=3, workers=workers)
    with data.Pipeline(source, 8, seed=3, position=position, process_index=process_index,
                       process_count=process_count, prefetch=2, crops=cropper) as pipeline:
      return [next(pipeline) for _ in range(n)]

  whole = batches(workers=1)
  assert sorted(whole[0]) == ["label", "view0", "view1", "view2"]
  assert whole[0]["view0"].shape == (8, 32, 32, 3) and whole[0]["view2"].shape == (8, 16, 16, 3)
  assert whole[0]["view0"].dtype == np.uint8
  for a, b in zip(whole, batches(workers=3)):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  halves = [batches(workers=2, process_index=i, process_count=2) for i in (0, 1)]
  for step in range(4):
    for key in whole[step]:
      np.testing.assert_array_equal(np.concatenate([halves[0][step][key], halves[1][step][key]]), whole[step][key])
  # Three batches per epoch: position 2 is mid-epoch, and the next epoch's crops are fresh draws.
  for a, b in zip(whole[2:], batches(workers=2, position=2, n=2)):
    np.testing.assert_array_equal(a["view1"], b["view1"])
  assert not np.array_equal(whole[0]["view0"], whole[3]["view0"])


def _host_config(jpeg_folder, method="simclr", **data_fields):
  from tiny import tiny_config

  config = tiny_config(method, batch_size=8)
  config.data.update({"source": "folder", "data_dir": str(jpeg_folder), "image_size": 24, "mean": (0.5,) * 3,
                      "std": (0.25,) * 3, "workers": 2, **data_fields})
  config.augment.size = 16
  return config


def test_folder_sources_crop_on_the_host_by_default_and_in_memory_ones_on_the_device(jpeg_folder):
  config = _host_config(jpeg_folder)
  assert data.crops_on_host(config.data)
  dataset = data.load(config.data)
  assert isinstance(dataset.train, data.FolderSource)      # not cached: read from the originals every step
  assert isinstance(dataset.test, data.ArraySource)        # evaluation splits: cached centre squares
  for fields in ({"source": "synthetic"}, {"source": "tfds", "image_size": 0}, {"source": "numpy"}):
    assert not data.crops_on_host(ml_collections.ConfigDict({**config.data.to_dict(), **fields}))
  assert data.crops_on_host(ml_collections.ConfigDict({**config.data.to_dict(), "source": "tfds",
                                                       "image_size": 224}))
  assert not data.crops_on_host(ml_collections.ConfigDict({**config.data.to_dict(), "crop_on": "device"}))


def test_views_of_host_crops_take_the_rest_of_the_recipe_on_device():
  recipe = augment.ViewRecipe(size=8, flip_prob=1.0, jitter_prob=0.0, grayscale_prob=0.0)
  crops = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
  keys = jax.random.split(jax.random.key(0), 2)
  (view,) = augment.views_of_crops(keys, [jnp.asarray(crops)], [recipe])
  np.testing.assert_allclose(np.asarray(view), crops[:, :, ::-1, :] / 255.0, atol=1e-6)
  with pytest.raises(ValueError, match="2 host crops for 1 view recipes"):
    augment.views_of_crops(keys, [crops, crops], [recipe])


@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
@pytest.mark.parametrize("method", ["dino"])        # 2 global + 2 local crops
def test_eight_devices_match_one_with_host_crops(jpeg_folder, method):
  config = _host_config(jpeg_folder, method)
  dataset = data.load(config.data)
  trainer = train_step.build(config, total_steps=2)
  cropper = data.host_cropper(config, trainer.recipes, channels=3)
  with data.Pipeline(dataset.train, 8, seed=config.seed, prefetch=0, crops=cropper) as pipeline:
    batches = [next(pipeline) for _ in range(2)]
  assert len([k for k in batches[0] if k.startswith("view")]) == len(trainer.recipes)

  def run(num_devices):
    steps = helpers.Steps(config, num_devices, total_steps=2, channels=3)
    losses = [float(metrics["loss"]) for metrics in steps.run(batches)]
    return losses, jax.device_get(steps.state.params)

  losses_one, params_one = run(1)
  losses_eight, params_eight = run(8)
  assert all(math.isfinite(l) for l in losses_one)
  np.testing.assert_allclose(losses_eight, losses_one, rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(params_one), jax.tree.leaves(params_eight)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
