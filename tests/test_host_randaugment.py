"""RandAugment in the host crop workers (PIL, ``jaxssl.data.host_randaugment``): each operation equals the
device version's at the same magnitude and sign, the host flips and RandAugments only views whose recipe says
so (and the device then does neither), the draws follow (seed, step, slot, view), and bicubic crops."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import helpers
from jaxssl import tasks
from jaxssl.common.config_checks import ConfigError
from jaxssl.data import generate, host_crops, host_randaugment as hra
from jaxssl.data.host_crops import CropSpec
from jaxssl.ops import augment, randaugment as ra
from jaxssl.schema import defaults, validate


class _Positive:
  """A generator stand-in whose sign draws keep the value positive (``random() >= 0.5``)."""

  def random(self):
    return 0.9


def _positive_key() -> jax.Array:
  """A key whose device sign draw keeps the value positive (``uniform(key) >= 0.5``)."""
  for seed in range(100):
    key = jax.random.key(seed)
    if float(jax.random.uniform(key)) >= 0.5:
      return key
  raise AssertionError("no key found")


@pytest.fixture(scope="module")
def image():
  """A smooth 24x32 RGB image (bilinear interpolation differences stay within a grey level)."""
  base = np.random.default_rng(0).integers(0, 256, (6, 6, 3)).astype(np.uint8)
  return np.asarray(Image.fromarray(base).resize((32, 24), Image.BILINEAR))


@pytest.mark.parametrize("name", ra.OPS)
def test_each_host_operation_is_the_device_operation_within_a_grey_level(image, name):
  spec = hra.RandAugmentSpec(fill=(128, 128, 128))
  host = np.asarray(hra.apply_op(name, Image.fromarray(image), _Positive(), 9.0, spec), np.float32)
  x = jnp.asarray(image, jnp.float32) / 255.0
  device = ra.apply_op(jnp.asarray(ra.OPS.index(name)), _positive_key(), x, jnp.asarray(9.0),
                       jnp.full((3,), 128 / 255.0))
  assert np.abs(np.asarray(device) * 255.0 - host).max() <= 1.5, name
  # Each changes the image at magnitude 9 (the level-to-argument rule is not the identity).
  assert np.abs(host - image).max() > 1.0, name


def test_posterize_at_magnitude_ten_is_black_as_on_the_device(image):
  out = hra.apply_op("PosterizeIncreasing", Image.fromarray(image), _Positive(), 10.0, hra.RandAugmentSpec())
  assert not np.asarray(out).any()


def test_rand_augment_follows_its_generator_and_leaves_about_a_quarter_untouched(image):
  spec = hra.RandAugmentSpec(layers=2, fill=(128, 128, 128))
  pil = Image.fromarray(image)
  outs = [np.asarray(hra.rand_augment(pil, np.random.default_rng([3, i]), spec)) for i in range(200)]
  again = np.asarray(hra.rand_augment(pil, np.random.default_rng([3, 7]), spec))
  np.testing.assert_array_equal(outs[7], again)
  changed = np.mean([np.abs(o.astype(int) - image).max() > 1 for o in outs])
  assert 0.5 < changed < 0.95                 # two operations at p 0.5: about 3/4 changed
  gray = hra.rand_augment(Image.fromarray(image[..., 0]), np.random.default_rng(0), spec)
  assert gray.mode == "L" and gray.size == (32, 24)


def _classifier_recipe(**augment_fields) -> augment.ViewRecipe:
  config = defaults.get_config("classifier")
  config.augment.randaugment_layers = 2
  config.augment.update(augment_fields)
  (recipe,) = tasks.get(config).recipes(config)
  return recipe


def test_views_with_host_randaugment_are_flipped_and_augmented_on_the_host_and_not_again_on_the_device(tmp_path):
  array = generate.image(np.random.default_rng(1), 90, 120)
  path = str(tmp_path / "a.png")
  Image.fromarray(array).save(path)
  recipe = _classifier_recipe(size=32)
  (spec,) = host_crops.crop_specs([recipe])
  assert spec.flip_prob == 0.5 and spec.randaugment is not None and spec.randaugment.layers == 2
  assert spec.randaugment.fill == tuple(round(255 * m) for m in defaults.get_config("classifier").data.mean)
  # The host's view: the crop, then the flip and RandAugment from the same generator, after the box.
  (crop,) = host_crops.crop_example(path, [spec], 3, seed=7, step=3, slot=5)
  rng = host_crops.view_rng(7, 3, 5, 0)
  left, top, w, h = host_crops.sample_box(rng, 120, 90, spec.scale, spec.ratio)
  expected = Image.fromarray(array).resize((32, 32), Image.BILINEAR, box=(left, top, left + w, top + h))
  if rng.random() < 0.5:
    expected = expected.transpose(Image.FLIP_LEFT_RIGHT)
  expected = hra.rand_augment(expected, rng, spec.randaugment)
  np.testing.assert_array_equal(crop, np.asarray(expected))
  # The device leaves such a crop as it is (the recipe has nothing else photometric).
  assert recipe.after_host_crop().flip_prob == 0.0 and recipe.after_host_crop().randaugment_layers == 0
  crops = np.stack([crop, crop])
  (view,) = augment.views_of_crops(jax.random.split(jax.random.key(0), 2), [jnp.asarray(crops)], [recipe])
  np.testing.assert_allclose(np.asarray(view), crops / 255.0, atol=1e-6)
  # randaugment_on="device": the host only crops, the device flips and augments.
  on_device = _classifier_recipe(size=32, randaugment_on="device")
  (plain,) = host_crops.crop_specs([on_device])
  assert plain.randaugment is None and plain.flip_prob == 0.0 and on_device.after_host_crop() == on_device


def test_host_randaugment_batches_do_not_depend_on_the_workers(tmp_path):
  folder = helpers.jpeg_splits(tmp_path, {"train": 12})
  handles = sorted(str(p) for p in (folder / "train").rglob("*.jpg"))
  specs = host_crops.crop_specs([_classifier_recipe(size=24)])
  one = host_crops.HostCropper(specs, seed=3, channels=3, workers=1)
  three = host_crops.HostCropper(specs, seed=3, channels=3, workers=3)
  try:
    a, b = one(handles, step=2, first_slot=4), three(handles, step=2, first_slot=4)
    np.testing.assert_array_equal(a["view0"], b["view0"])
    assert not np.array_equal(a["view0"], one(handles, step=3, first_slot=4)["view0"])
  finally:
    one.close()
    three.close()


def test_bicubic_crops_are_pils_on_the_host_and_within_two_grey_levels_on_the_device(tmp_path):
  array = generate.image(np.random.default_rng(2), 90, 120)
  spec = CropSpec(32, interpolation="bicubic")
  (crop,) = host_crops.crop_example(array, [spec], 3, seed=1, step=0, slot=0)
  left, top, w, h = host_crops.sample_box(host_crops.view_rng(1, 0, 0, 0), 120, 90, spec.scale, spec.ratio)
  expected = np.asarray(Image.fromarray(array).resize((32, 32), Image.BICUBIC, box=(left, top, left + w, top + h)))
  np.testing.assert_array_equal(crop, expected)
  device = augment.crop_and_resize(jnp.asarray(array, jnp.float32) / 255.0, top, left, h, w, 32, "bicubic")
  inner = (slice(2, -2), slice(2, -2))                       # PIL truncates the kernel at the border
  assert np.abs(np.asarray(device)[inner] * 255.0 - expected[inner]).max() <= 2.0
  bilinear = augment.crop_and_resize(jnp.asarray(array, jnp.float32) / 255.0, top, left, h, w, 32)
  assert np.abs(np.asarray(bilinear) - np.asarray(device)).max() > 1 / 255.0   # not the same filter


def test_randaugment_placement_and_interpolation_are_validated():
  config = defaults.get_config("classifier")
  config.augment.randaugment_layers = 2
  config.augment.randaugment_on = "gpu"
  with pytest.raises(ConfigError, match=r"^config.augment.randaugment_on='gpu': use one of 'auto', 'device'"):
    validate.validate(config, num_devices=1)
  config.augment.randaugment_on = "auto"
  config.augment.interpolation = "bicubic"          # Fashion-MNIST is cropped, so RandAugmented, on the device
  with pytest.raises(ConfigError, match=r"^config.augment.interpolation='bicubic': RandAugment on the device"):
    validate.validate(config, num_devices=1)
  config.augment.interpolation = "lanczos"
  with pytest.raises(ConfigError, match=r"^config.augment.interpolation='lanczos': use one of"):
    validate.validate(config, num_devices=1)
  simclr = defaults.get_config("simclr")
  simclr.augment.randaugment_on = "device"
  with pytest.raises(ConfigError, match="config.augment.randaugment_on='device': not used by method 'simclr'"):
    validate.validate(simclr, num_devices=1)
  simclr = defaults.get_config("simclr")
  simclr.augment.interpolation = "bicubic"           # every method's crops read it
  validate.validate(simclr, num_devices=1)
