"""Decoding images with PIL: what it raises for a file that is not a readable image, that error in one short
line, and a decoded image in the mode a source stores ("L" or "RGB")."""

from __future__ import annotations

import numpy as np


def decode_errors() -> tuple[type[BaseException], ...]:
  """What PIL raises for a file that is not a readable image: missing or unreadable (broken symlinks, loops),
  not an image, truncated, malformed (ValueError, SyntaxError, EOFError), or over its decompression-bomb limit."""
  from PIL import Image

  return (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def describe_decode_error(error: BaseException) -> str:
  return " ".join(f"{type(error).__name__}: {error}".split())[:200]


def to_mode(image, mode: str):
  """A PIL image in ``mode`` ("L" or "RGB"). 16- and 32-bit integer images (16-bit PNGs open as "I;16" or "I")
  are scaled to 8 bits, not clipped: PIL's convert would clip them to 255, near-white."""
  from PIL import Image

  if image.mode.startswith("I") and image.mode != mode:
    wide = np.asarray(image).astype(np.int64)
    image = Image.fromarray(np.clip(wide // 257, 0, 255).astype(np.uint8), "L")
  return image if image.mode == mode else image.convert(mode)
