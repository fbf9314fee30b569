import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxssl.ops import augment


def _image(key=0, size=16, channels=3):
  return jax.random.uniform(jax.random.key(key), (size, size, channels))


KEY = jax.random.key(42)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("recipe", [augment.simclr_recipes, augment.byol_recipes])
def test_views_shape_dtype_range(recipe, channels):
  images = jax.random.randint(jax.random.key(0), (4, 20, 20, channels), 0, 256).astype(jnp.uint8)
  keys = jax.random.split(KEY, 4)
  views = jax.jit(lambda k, x: augment.views(k, x, recipe(size=12)))(keys, images)
  assert len(views) == 2
  for v in views:
    assert v.shape == (4, 12, 12, channels)
    assert v.dtype == jnp.float32
    assert float(v.min()) >= 0.0 and float(v.max()) <= 1.0


def test_same_key_same_view_and_different_keys_differ():
  images = jax.random.randint(jax.random.key(0), (4, 16, 16, 3), 0, 256).astype(jnp.uint8)
  recipes = augment.simclr_recipes(size=16)
  keys = jax.random.split(KEY, 4)
  a = augment.views(keys, images, recipes)
  b = augment.views(keys, images, recipes)
  c = augment.views(jax.random.split(jax.random.key(7), 4), images, recipes)
  np.testing.assert_array_equal(a[0], b[0])
  assert not np.allclose(a[0], c[0])
  assert not np.allclose(a[0], a[1])          # the two views of an image differ


def test_crop_of_whole_image_is_identity():
  image = _image()
  out = augment.random_resized_crop(KEY, image, 16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
  np.testing.assert_allclose(out, image, atol=1e-6)


def test_crop_resizes_and_stays_in_range():
  out = augment.random_resized_crop(KEY, _image(size=32), 8)
  assert out.shape == (8, 8, 3) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_crop_scale_controls_area():
  # A constant image with one bright quadrant: tiny crops are mostly uniform, full crops see both levels.
  image = jnp.zeros((32, 32, 1)).at[:16, :16].set(1.0)
  small = jax.vmap(lambda k: augment.random_resized_crop(k, image, 8, scale=(0.01, 0.02)))(
      jax.random.split(KEY, 64))
  assert float(jnp.mean(jnp.std(small, axis=(1, 2, 3)))) < 0.2
  full = augment.random_resized_crop(KEY, image, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
  assert float(full.mean()) == pytest.approx(0.25, abs=1e-5)


def test_flip():
  image = _image()
  np.testing.assert_array_equal(augment.random_flip(KEY, image, prob=0.0), image)
  np.testing.assert_array_equal(augment.random_flip(KEY, image, prob=1.0), image[:, ::-1])


def test_rotation_identity_and_change():
  image = _image()
  np.testing.assert_allclose(augment.random_rotation(KEY, image, max_degrees=0.0), image, atol=1e-5)
  np.testing.assert_allclose(augment.random_rotation(KEY, image, max_degrees=30.0, prob=0.0), image)
  assert not np.allclose(augment.random_rotation(KEY, image, max_degrees=30.0, prob=1.0), image)


@pytest.mark.parametrize("channels", [1, 3])
def test_color_jitter_identity_settings(channels):
  image = _image(channels=channels)
  same = augment.color_jitter(KEY, image, 0.0, 0.0, 0.0, 0.0, prob=1.0)
  np.testing.assert_allclose(same, image, atol=1e-5)
  np.testing.assert_array_equal(augment.color_jitter(KEY, image, 0.8, 0.8, 0.8, 0.2, prob=0.0), image)
  assert not np.allclose(augment.color_jitter(KEY, image, 0.8, 0.8, 0.8, 0.2, prob=1.0), image)


def test_color_ops_identity_factors():
  image = _image()
  np.testing.assert_allclose(augment.adjust_brightness(image, 1.0), image, atol=1e-6)
  np.testing.assert_allclose(augment.adjust_contrast(image, 1.0), image, atol=1e-6)
  np.testing.assert_allclose(augment.adjust_saturation(image, 1.0), image, atol=1e-6)
  np.testing.assert_allclose(augment.adjust_hue(image, 0.0), image, atol=1e-5)


def test_grayscale():
  image = _image()
  gray = augment.to_grayscale(image)
  np.testing.assert_allclose(gray[..., 0], gray[..., 1])
  # torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma, as dm-pix's rec601)
  np.testing.assert_allclose(gray[..., 0], image @ jnp.array([0.2989, 0.587, 0.114]), atol=1e-6)
  one_channel = _image(channels=1)
  np.testing.assert_array_equal(augment.to_grayscale(one_channel), one_channel)
  np.testing.assert_array_equal(augment.random_grayscale(KEY, image, prob=0.0), image)


def test_blur():
  image = _image()
  np.testing.assert_array_equal(augment.random_blur(KEY, image, prob=0.0), image)
  np.testing.assert_allclose(augment.gaussian_blur(image, jnp.float32(0.01), 5), image, atol=1e-6)
  blurred = augment.gaussian_blur(image, jnp.float32(2.0), 5)
  assert float(jnp.std(blurred)) < float(jnp.std(image))             # smoothing lowers the variance
  assert float(jnp.mean(blurred)) == pytest.approx(float(jnp.mean(image)), abs=0.02)
  constant = jnp.full((8, 8, 1), 0.3)
  np.testing.assert_allclose(augment.gaussian_blur(constant, jnp.float32(1.5), 5), constant, atol=1e-6)


def test_solarize():
  image = _image()
  np.testing.assert_array_equal(augment.random_solarize(KEY, image, prob=0.0), image)
  np.testing.assert_allclose(augment.solarize(image, threshold=1.01), image)
  out = augment.solarize(jnp.array([[[0.2, 0.5, 0.9]]]))
  np.testing.assert_allclose(out, [[[0.2, 0.5, 0.1]]], atol=1e-6)


def test_byol_recipes_are_asymmetric():
  first, second = augment.byol_recipes(size=32)
  assert (first.blur_prob, second.blur_prob) == (1.0, 0.1)
  assert (first.solarize_prob, second.solarize_prob) == (0.0, 0.2)


def test_rotation_by_a_right_angle_is_exact():
  # The border is left out: dm-pix's zero fill takes a source coordinate a rounding error outside the image
  # (cos(pi / 2) is not exactly 0 in float32) for outside.
  image = np.random.default_rng(0).random((9, 9, 1)).astype(np.float32)
  inner = lambda x: np.asarray(x)[1:-1, 1:-1]
  np.testing.assert_allclose(inner(augment.rotate(jnp.asarray(image), 90.0)), inner(np.rot90(image, k=1)),
                             atol=1e-5)
  np.testing.assert_allclose(inner(augment.rotate(jnp.asarray(image), 180.0)), inner(image[::-1, ::-1]),
                             atol=1e-5)


def test_rotation_is_reachable_from_the_config_and_gives_a_rotated_view():
  """augment.rotation_prob / rotation_degrees reach every recipe; a view with only rotation on is the image
  rotated by some angle within the range (found by search), and not the image itself."""
  from jaxssl import tasks
  from jaxssl.schema import defaults
  for name in tasks.names():
    config = defaults.get_config(name)
    config.augment.rotation_prob, config.augment.rotation_degrees = 1.0, 30.0
    recipes = tasks.get(config).recipes(config)
    assert all(r.rotation_prob == 1.0 and r.rotation_degrees == 30.0 for r in recipes), name
    assert defaults.get_config(name).augment.rotation_prob == 0.0        # off by default, as the papers

  yy, xx = np.mgrid[:16, :16]
  image = jnp.asarray(((xx + 2 * yy) % 7 / 6.0)[..., None], jnp.float32)  # asymmetric texture
  recipe = augment.ViewRecipe(size=16, crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0,
                              jitter_prob=0.0, grayscale_prob=0.0, rotation_prob=1.0, rotation_degrees=30.0)
  view = recipe.apply(jax.random.key(3), image)
  error = jax.vmap(lambda a: jnp.max(jnp.abs(augment.rotate(image, a) - view)))
  coarse = jnp.linspace(-30.0, 30.0, 1201)                                # 0.05 degree steps, then finer
  fine = coarse[int(jnp.argmin(error(coarse)))] + jnp.linspace(-0.05, 0.05, 201)
  errors = error(fine)
  best = int(jnp.argmin(errors))
  assert float(errors[best]) < 1e-4, float(errors[best])
  assert abs(float(fine[best])) > 0.5            # really rotated
  assert float(jnp.max(jnp.abs(view - image))) > 0.1
