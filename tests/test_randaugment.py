"""RandAugment's operations against PIL's (which timm applies), random erasing, and the classifier's view."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from jaxssl import tasks
from jaxssl.common.config_checks import ConfigError
from jaxssl.ops import augment, randaugment as ra
from jaxssl.schema import defaults, validate


@pytest.fixture(scope="module")
def image():
  """A smooth 24x32 RGB image (bilinear interpolation differences stay within a grey level)."""
  base = np.random.default_rng(0).integers(0, 256, (6, 6, 3)).astype(np.uint8)
  return np.asarray(Image.fromarray(base).resize((32, 24), Image.BILINEAR))


def _levels_apart(ours, theirs) -> float:
  return float(np.abs(np.asarray(ours) * 255.0 - np.asarray(theirs, np.float32)).max())


FILL = (128, 128, 128)


@pytest.mark.parametrize("name,ours,pil", [
    ("autocontrast", lambda x, f: ra.auto_contrast(x), lambda p: ImageOps.autocontrast(p)),
    ("equalize", lambda x, f: ra.equalize(x), lambda p: ImageOps.equalize(p)),
    ("posterize", lambda x, f: ra.posterize(x, 2), lambda p: ImageOps.posterize(p, 2)),
    ("solarize", lambda x, f: ra.solarize(x, 100), lambda p: ImageOps.solarize(p, 100)),
    ("solarize_add", lambda x, f: ra.solarize_add(x, 50),
     lambda p: p.point([min(255, i + 50) if i < 128 else i for i in range(256)] * 3)),
    ("color", lambda x, f: ra.color(x, 1.7), lambda p: ImageEnhance.Color(p).enhance(1.7)),
    ("contrast", lambda x, f: ra.contrast(x, 0.3), lambda p: ImageEnhance.Contrast(p).enhance(0.3)),
    ("brightness", lambda x, f: ra.brightness(x, 1.7), lambda p: ImageEnhance.Brightness(p).enhance(1.7)),
    ("sharpness", lambda x, f: ra.sharpness(x, 0.3), lambda p: ImageEnhance.Sharpness(p).enhance(0.3)),
    ("rotate", lambda x, f: ra.rotate(x, 20.0, f), lambda p: p.rotate(20.0, resample=Image.BILINEAR, fillcolor=FILL)),
    ("shear_x", lambda x, f: ra.affine(x, jnp.array([[1, 0.3, 0], [0, 1, 0.]]), f),
     lambda p: p.transform(p.size, Image.AFFINE, (1, 0.3, 0, 0, 1, 0), resample=Image.BILINEAR, fillcolor=FILL)),
    ("translate_y", lambda x, f: ra.affine(x, jnp.array([[1, 0, 0], [0, 1, 5.]]), f),
     lambda p: p.transform(p.size, Image.AFFINE, (1, 0, 0, 0, 1, 5), resample=Image.BILINEAR, fillcolor=FILL)),
])
def test_each_operation_is_pils_within_a_grey_level(image, name, ours, pil):
  x = jnp.asarray(image, jnp.float32) / 255.0
  fill = jnp.full((3,), 128 / 255.0)
  assert _levels_apart(ours(x, fill), pil(Image.fromarray(image))) <= 1.5, name


def test_rand_augment_stays_in_range_follows_its_key_and_changes_images(image):
  x = jnp.asarray(image, jnp.float32) / 255.0
  keys = jax.random.split(jax.random.key(0), 64)
  out = jax.vmap(lambda k: ra.rand_augment(k, x))(keys)
  assert out.shape == (64, *x.shape) and float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  np.testing.assert_allclose(out[3], ra.rand_augment(keys[3], x), atol=1e-5)   # a function of its key
  changed = np.asarray(jnp.abs(out - x).max(axis=(1, 2, 3)) > 1e-3)
  # Two operations at p 0.5 each: about a quarter of the images untouched (some operations change little).
  assert 0.4 < changed.mean() < 0.95
  every_op = [ra.apply_op(jnp.asarray(i), jax.random.key(i), x, jnp.asarray(9.0), jnp.full((3,), 0.5))
              for i in range(len(ra.OPS))]
  assert all(bool(jnp.any(jnp.abs(o - x) > 1e-3)) for o in every_op)


def test_random_erasing_fills_one_box_of_the_right_size_with_noise():
  x = jnp.zeros((32, 32, 3))
  keys = jax.random.split(jax.random.key(1), 200)
  out = jax.vmap(lambda k: augment.random_erasing(k, x, prob=1.0))(keys)
  erased = np.asarray(jnp.any(out != 0, axis=-1))
  shares = erased.mean(axis=(1, 2))
  assert (shares > 0).mean() > 0.9                           # most first candidates fit
  assert shares.max() <= 1 / 3 + 0.05 and shares[shares > 0].min() >= 0.02 - 0.01
  for e in erased[:20]:                                      # one rectangle
    rows, cols = np.flatnonzero(e.any(1)), np.flatnonzero(e.any(0))
    if len(rows):
      assert e[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all()
  untouched = jax.vmap(lambda k: augment.random_erasing(k, x, prob=0.0))(keys)
  assert not bool(jnp.any(untouched != 0))


def test_the_classifier_view_reads_randaugment_and_other_methods_refuse_it():
  config = defaults.get_config("classifier")
  config.augment.randaugment_layers = 2
  validate.validate(config, num_devices=1)
  (recipe,) = tasks.get(config).recipes(config)
  assert (recipe.randaugment_layers, recipe.randaugment_magnitude, recipe.randaugment_fill) == (
      2, 9.0, tuple(config.data.mean))
  simclr = defaults.get_config("simclr")
  simclr.augment.randaugment_layers = 2
  with pytest.raises(ConfigError, match="config.augment.randaugment_layers=2: not used by method 'simclr'"):
    validate.validate(simclr, num_devices=1)
