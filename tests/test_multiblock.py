"""I-JEPA's multi-block masks (jaxssl/ops/multiblock.py) against a transcription of the official collator
(facebookresearch/ijepa ``src/masks/multiblock.py``, ``MaskCollator``): the sizes drawn once per batch, every
target a whole block, the context's search with its relaxation, the batch's cut; and masks that depend on the
step's key and each example's key only."""

import math

import jax
import numpy as np
import pytest

from jaxssl.ops import multiblock

SCALES = dict(target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5), context_scale=(0.85, 1.0))


class OfficialCollator:
  """``MaskCollator`` line by line, with NumPy's generator for torch's (``torch.rand`` -> ``random``,
  ``torch.randint(0, n)`` -> ``integers(0, n)``), one process."""

  def __init__(self, grid, enc_mask_scale=(0.85, 1.0), pred_mask_scale=(0.15, 0.2), aspect_ratio=(0.75, 1.5),
               nenc=1, npred=4, min_keep=10):
    self.height, self.width = grid
    self.enc_mask_scale, self.pred_mask_scale, self.aspect_ratio = enc_mask_scale, pred_mask_scale, aspect_ratio
    self.nenc, self.npred, self.min_keep = nenc, npred, min_keep

  def sample_block_size(self, rand, scale, aspect_ratio_scale):
    min_s, max_s = scale
    mask_scale = min_s + rand * (max_s - min_s)
    max_keep = int(self.height * self.width * mask_scale)
    min_ar, max_ar = aspect_ratio_scale
    aspect_ratio = min_ar + rand * (max_ar - min_ar)
    h = int(round(math.sqrt(max_keep * aspect_ratio)))
    w = int(round(math.sqrt(max_keep / aspect_ratio)))
    while h >= self.height:
      h -= 1
    while w >= self.width:
      w -= 1
    return h, w

  def sample_block_mask(self, rng, b_size, acceptable_regions=None):
    h, w = b_size
    tries, timeout = 0, 20
    while True:
      top = rng.integers(0, self.height - h)
      left = rng.integers(0, self.width - w)
      mask = np.zeros((self.height, self.width), np.int32)
      mask[top:top + h, left:left + w] = 1
      if acceptable_regions is not None:
        for k in range(max(int(len(acceptable_regions) - tries), 0)):
          mask *= acceptable_regions[k]
      mask = np.nonzero(mask.flatten())[0]
      if len(mask) > self.min_keep:
        break
      timeout -= 1
      if timeout == 0:
        tries += 1
        timeout = 20
    complement = np.ones((self.height, self.width), np.int32)
    complement[top:top + h, left:left + w] = 0
    return mask, complement, tries

  def __call__(self, batch, rng, sizes):
    """``sizes``: the step's (target, context) sizes, drawn by the caller from the step's generator. Returns
    (contexts, targets, the relaxations each context needed), each cut to the batch's fewest."""
    p_size, e_size = sizes
    masks_pred, masks_enc, relaxed = [], [], []
    min_keep_pred = min_keep_enc = self.height * self.width
    for _ in range(batch):
      masks_p, masks_c = [], []
      for _ in range(self.npred):
        mask, mask_c, _ = self.sample_block_mask(rng, p_size)
        masks_p.append(mask)
        masks_c.append(mask_c)
        min_keep_pred = min(min_keep_pred, len(mask))
      masks_pred.append(masks_p)
      mask, _, tries = self.sample_block_mask(rng, e_size, acceptable_regions=masks_c)
      masks_enc.append([mask])
      relaxed.append(tries)
      min_keep_enc = min(min_keep_enc, len(mask))
    self.uncut = (masks_enc, masks_pred)
    return ([[m[:min_keep_enc] for m in ms] for ms in masks_enc], [[m[:min_keep_pred] for m in ms] for ms in masks_pred],
            relaxed, [len(ms[0]) for ms in masks_enc])


def _sizes(step_key, grid, target_scale, target_aspect, context_scale):
  """The (target, context) sizes the step's key draws (multiblock_masks' first two uniforms)."""
  k_target, k_context = jax.random.split(step_key)
  t = multiblock.block_size(jax.random.uniform(k_target), grid, target_scale, target_aspect)
  c = multiblock.block_size(jax.random.uniform(k_context), grid, context_scale, (1.0, 1.0))
  return tuple(int(v) for v in t), tuple(int(v) for v in c)


def _rows_cols(indices, width):
  return np.asarray(indices) // width, np.asarray(indices) % width


@pytest.mark.parametrize("grid", [(16, 16), (14, 14), (10, 18)])
def test_one_size_per_batch_and_every_target_keeps_its_whole_block(grid):
  n = 64
  for step in range(4):
    step_key = jax.random.key(100 + step)
    (ht, wt), (hc, wc) = _sizes(step_key, grid, **SCALES)
    # The official draws, from the step's generator in the same order: the target size, then the context's.
    official = OfficialCollator(grid)
    assert (ht, wt) == official.sample_block_size(float(jax.random.uniform(jax.random.split(step_key)[0])),
                                                  official.pred_mask_scale, official.aspect_ratio)
    out = multiblock.multiblock_masks(step_key, jax.random.split(jax.random.key(step), n), grid, **SCALES)
    assert int(out.target_count) == ht * wt
    assert out.targets.shape == (n, 4, multiblock.largest_block(grid, SCALES["target_scale"], SCALES["target_aspect"]))
    valid = np.asarray(out.target_valid())
    for i in range(n):
      for t in np.asarray(out.targets[i]):
        rows, cols = _rows_cols(t[valid], grid[1])
        assert len(set(t[valid])) == ht * wt                                 # the whole block, each patch once
        assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (ht, wt)
        assert rows.max() < grid[0] - 1 or ht == grid[0] - 1             # torch.randint's exclusive high end
      context = np.asarray(out.context[i])[np.asarray(out.context_valid()[i])]
      assert len(context) == int(out.context_count[i]) > 10                  # more than min_keep
      assert not set(context) & set(np.asarray(out.targets[i])[:, valid].ravel())
      rows, cols = _rows_cols(context, grid[1])
      assert rows.max() - rows.min() + 1 <= hc and cols.max() - cols.min() + 1 <= wc
      assert np.all(np.diff(context) > 0)                                    # a row-major prefix


@pytest.mark.parametrize("case", ["official", "crowded"])
def test_contexts_are_distributed_as_the_official_collators(case):
  # "crowded": a small context among large targets, so the official search often relaxes its constraints.
  grid, scales, min_keep = ((16, 16), SCALES, 10) if case == "official" else (
      (8, 8), dict(target_scale=(0.2, 0.25), target_aspect=(0.75, 1.5), context_scale=(0.3, 0.35)), 8)
  step_key = jax.random.key(7)
  sizes = _sizes(step_key, grid, **scales)
  room = multiblock.largest_block(grid, scales["context_scale"], (1.0, 1.0))      # no cut: each whole context
  n = 2048
  out = multiblock.multiblock_masks(step_key, jax.random.split(jax.random.key(1), n), grid, context_keep=room,
                                    min_keep=min_keep, **scales)
  ours = np.asarray(out.context_count)
  official = OfficialCollator(grid, scales["context_scale"], scales["target_scale"], scales["target_aspect"],
                              min_keep=min_keep)
  _, _, relaxed, theirs = official(n, np.random.default_rng(0), sizes)
  theirs = np.asarray(theirs)
  # How often a context overlaps a target: only where the search relaxed its constraints.
  their_overlaps = np.mean([bool(set(c[0]) & set(np.concatenate(t))) for c, t in zip(*official.uncut)])
  targets, valid = np.asarray(out.targets), np.asarray(out.target_valid())
  our_overlaps = np.mean([bool(set(np.asarray(out.context[i])[:ours[i]]) & set(targets[i][:, valid].ravel()))
                          for i in range(n)])
  if case == "crowded":
    assert np.mean(np.asarray(relaxed) > 0) > 0.05 and their_overlaps > 0.03     # the relaxation is exercised
  spread = np.sqrt(their_overlaps * (1 - their_overlaps) / n * 2) + 1e-3
  assert abs(our_overlaps - their_overlaps) < 4 * spread, (our_overlaps, their_overlaps)
  stderr = np.sqrt(ours.var() / n + theirs.var() / n)
  assert abs(ours.mean() - theirs.mean()) < 4 * stderr, (ours.mean(), theirs.mean())
  assert abs(np.median(ours) - np.median(theirs)) <= 2
  assert ours.min() > min_keep and theirs.min() > min_keep


def test_the_default_context_room_is_the_official_batches_median_cut():
  grid = (14, 14)
  official = OfficialCollator(grid)
  rng = np.random.default_rng(3)
  cuts = []
  for _ in range(40):
    u = rng.uniform(size=2)
    sizes = (official.sample_block_size(u[0], official.pred_mask_scale, official.aspect_ratio),
             official.sample_block_size(u[1], official.enc_mask_scale, (1.0, 1.0)))
    contexts, _, _, _ = official(128, rng, sizes)
    cuts.append(len(contexts[0][0]))
  default = multiblock.default_context_keep(grid, 4, SCALES["target_scale"], SCALES["target_aspect"],
                                            SCALES["context_scale"], 10)
  assert abs(default - np.median(cuts)) <= 3, (default, np.median(cuts))
  # The vectorised simulation behind the default, against the transcription: the same spread of cuts.
  simulated = multiblock.official_context_cuts(grid, 4, SCALES["target_scale"], SCALES["target_aspect"],
                                               SCALES["context_scale"], 10)
  assert abs(simulated.mean() - np.mean(cuts)) < 4 * np.std(cuts) / np.sqrt(len(cuts)) + 1
  # Every context keeps up to that many patches, fewer only where it has fewer.
  out = multiblock.multiblock_masks(jax.random.key(2), jax.random.split(jax.random.key(3), 256), grid, **SCALES)
  assert out.context.shape == (256, default) and int(np.max(out.context_count)) == default


def test_masks_depend_on_the_steps_key_and_each_examples_key_only():
  keys = jax.random.split(jax.random.key(6), 8)
  step_key = jax.random.key(9)
  whole = multiblock.multiblock_masks(step_key, keys, (7, 7), min_keep=4)
  halves = [multiblock.multiblock_masks(step_key, keys[i:i + 4], (7, 7), min_keep=4) for i in (0, 4)]
  for field in ("context", "context_count", "targets"):
    np.testing.assert_array_equal(np.concatenate([getattr(h, field) for h in halves]), getattr(whole, field))
  assert all(int(h.target_count) == int(whole.target_count) for h in halves)
  # Another step draws other sizes (over a few steps).
  counts = {int(multiblock.multiblock_masks(jax.random.key(s), keys, (7, 7), min_keep=4).target_count)
            for s in range(12)}
  assert len(counts) > 1


def test_sizes_that_would_never_stop_the_official_search_are_refused():
  with pytest.raises(ValueError, match="min_keep=10 must be below the smallest target block"):
    multiblock.multiblock_masks(jax.random.key(0), jax.random.split(jax.random.key(0), 2), (7, 7))
  with pytest.raises(ValueError, match="context_keep=50 must be between 1 and the largest context block, 36"):
    multiblock.multiblock_masks(jax.random.key(0), jax.random.split(jax.random.key(0), 2), (7, 7), context_keep=50,
                                min_keep=4)


def test_block_sizes_are_the_official_ones():
  # 14 x 14 patches: the official block sizes for scale 0.15-0.2, aspect 0.75-1.5.
  h, w = multiblock.block_size(np.array([0.0, 1.0]), (14, 14), (0.15, 0.2), (0.75, 1.5))
  assert (h.tolist(), w.tolist()) == ([5.0, 8.0], [6.0, 5.0])   # int(196 * .15) = 29 -> 5 x 6; 39 -> 8 x 5
  h, w = multiblock.block_size(np.array([0.0, 1.0]), (16, 16), (0.85, 1.0), (1.0, 1.0))
  assert (h.tolist(), w.tolist()) == ([15.0, 15.0], [15.0, 15.0])    # capped one short of the grid
  official = OfficialCollator((16, 16))
  for u in np.linspace(0, 1, 101):
    h, w = multiblock.block_size(np.float64(u), (16, 16), (0.15, 0.2), (0.75, 1.5))
    assert (int(h), int(w)) == official.sample_block_size(u, (0.15, 0.2), (0.75, 1.5))
