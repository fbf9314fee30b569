"""Label smoothing, mixup (Zhang et al. 2018, arXiv:1710.09412) and cutmix (Yun et al. 2019, arXiv:1905.04899)
on the device, as timm's ``Mixup`` in its two modes:

- ``batch`` (timm's default, and MAE's ``main_finetune.py --mixup_mode batch``): one lambda, one choice of mixup
  or cutmix and one box for the whole batch, drawn from one key of the step;
- ``elem``: each example its own lambda, choice and box, drawn from its own key.

Each example mixes with its neighbour in the global batch (index XOR 1). timm pairs an example with its mirror in
the flipped batch (i with n - 1 - i); both pairings pair every example with another of a batch shuffled every
epoch, so partners are random either way, and this one never straddles two devices while each device's share of
the batch is even: 8 devices mix exactly as 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def smoothed_one_hot(labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
  """int [N] -> float32 [N, num_classes]: 1 - smoothing + smoothing / C on the label, smoothing / C elsewhere
  (timm's ``one_hot(..., on_value, off_value)``). Each row sums to 1."""
  off = smoothing / num_classes
  return jax.nn.one_hot(labels, num_classes, dtype=jnp.float32) * (1.0 - smoothing) + off


def partners(n: int) -> jax.Array:
  """[n] int32: the index each example mixes with, its neighbour (i XOR 1). ``n`` must be even."""
  return jnp.arange(n, dtype=jnp.int32) ^ 1


def cutmix_box(key: jax.Array, lam: jax.Array, height: int, width: int) -> tuple[jax.Array, ...]:
  """timm's ``rand_bbox``: a box of sides ``(1 - lam) ** 0.5`` times the image's around a uniform centre,
  clipped to the image; (y0, y1, x0, x1) int32 with 0 <= y0 <= y1 <= height and 0 <= x0 <= x1 <= width."""
  ratio = jnp.sqrt(1.0 - lam)
  cut_h, cut_w = (height * ratio).astype(jnp.int32), (width * ratio).astype(jnp.int32)
  ky, kx = jax.random.split(key)
  cy = jax.random.randint(ky, (), 0, height)
  cx = jax.random.randint(kx, (), 0, width)
  y0, y1 = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height)
  x0, x1 = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)
  return y0, y1, x0, x1


def _mix_one(key, image, partner, target, partner_target, mixup_alpha, cutmix_alpha, switch_prob, prob):
  k_apply, k_switch, k_mixup, k_cutmix, k_box = jax.random.split(key, 5)
  height, width = image.shape[0], image.shape[1]
  if mixup_alpha > 0 and cutmix_alpha > 0:
    use_cutmix = jax.random.uniform(k_switch) < switch_prob
  else:
    use_cutmix = jnp.asarray(cutmix_alpha > 0)
  lam_mixup = jax.random.beta(k_mixup, mixup_alpha, mixup_alpha) if mixup_alpha > 0 else jnp.ones(())
  lam_cutmix = jax.random.beta(k_cutmix, cutmix_alpha, cutmix_alpha) if cutmix_alpha > 0 else jnp.ones(())
  y0, y1, x0, x1 = cutmix_box(k_box, lam_cutmix, height, width)
  rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
  inside = ((rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1))[..., None]
  # cutmix's lambda is the share of the image left outside the box (timm's correct_lam).
  lam_box = 1.0 - ((y1 - y0) * (x1 - x0)).astype(jnp.float32) / (height * width)
  applied = jax.random.uniform(k_apply) < prob
  lam = jnp.where(applied, jnp.where(use_cutmix, lam_box, lam_mixup), 1.0)
  cut = jnp.where(inside, partner, image)
  blended = lam_mixup * image + (1.0 - lam_mixup) * partner
  mixed = jnp.where(applied, jnp.where(use_cutmix, cut, blended), image)
  return mixed, lam * target + (1.0 - lam) * partner_target


MODES = ("batch", "elem")


def mix(keys: jax.Array, images: jax.Array, targets: jax.Array, mixup_alpha: float, cutmix_alpha: float,
        switch_prob: float = 0.5, prob: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """Mixup or cutmix of each example with its partner (``partners``).

  Args:
    keys: [N] per-example keys (timm's ``elem`` mode), or one key (shape ``()``) for the whole batch (timm's
      ``batch`` mode: every example draws the same lambda, choice, box and whether to mix at all).
    images: float [N, H, W, C]; N even.
    targets: float [N, K] label distributions (``smoothed_one_hot``).
    mixup_alpha, cutmix_alpha: Beta(alpha, alpha) for lambda; 0 switches that one off (both 0: no mixing).
    switch_prob: the chance of cutmix rather than mixup when both are on.
    prob: the chance that an example is mixed at all.

  Returns:
    (images [N, H, W, C], targets [N, K]); each target row still sums to what it summed to (1).
  """
  if mixup_alpha <= 0 and cutmix_alpha <= 0:
    return images, targets
  if keys.ndim == 0:
    keys = jnp.broadcast_to(keys, images.shape[:1])
  other = partners(images.shape[0])
  fn = lambda k, x, p, t, pt: _mix_one(k, x, p, t, pt, mixup_alpha, cutmix_alpha, switch_prob, prob)
  mixed, mixed_targets = jax.vmap(fn)(keys, images, images[other], targets, targets[other])
  return mixed.astype(images.dtype), mixed_targets
