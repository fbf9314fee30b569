"""Test features for TensorBoard's PROJECTOR tab, which draws their t-SNE, UMAP or PCA in the browser, each point
labelled with its class and shown as its image.

The files (TensorBoard's projector format): ``embeddings/STEP/features.tsv`` (one row of floats per image),
``labels.tsv`` (one class name per row), ``sprite.png`` (the images in a square grid), and
``projector_config.pbtxt`` beside the event files, which lists the newest ``KEEP`` evaluations' embeddings.
"""

from __future__ import annotations

import io
import math

import numpy as np
from etils import epath

KEEP = 5                    # the newest evaluations' embeddings kept (one ResNet-50 embedding of 500 images: ~10 MB)
THUMBNAIL = 64              # px: the sprite of 500 ImageNet images stays under TensorBoard's 8192 px


def to_uint8(image: np.ndarray) -> np.ndarray:
  """An image as uint8: as it is, or floats in [0, 1] rounded to [0, 255]."""
  return image if image.dtype == np.uint8 else np.asarray(np.clip(image, 0.0, 1.0) * 255 + 0.5, np.uint8)


def _sprite(images: np.ndarray) -> tuple[bytes, int]:
  """The PNG of ``images`` [N, H, W, C] (uint8, or floats in [0, 1]) in a square grid, row by row, and the side
  of one image."""
  from PIL import Image

  n, h, w = images.shape[:3]
  side = min(max(h, w), THUMBNAIL)
  per_row = math.ceil(math.sqrt(n))
  grid = Image.new("RGB", (per_row * side, per_row * side))
  for i, image in enumerate(images):
    pixels = to_uint8(image)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
    grid.paste(picture.resize((side, side)), ((i % per_row) * side, (i // per_row) * side))
  out = io.BytesIO()
  grid.save(out, format="PNG")
  return out.getvalue(), side


def write(folder: epath.PathLike, features: np.ndarray, labels: list[str], images: np.ndarray, step: int) -> None:
  """The embedding of evaluation ``step``: ``features`` [N, D], one label and one image [H, W, C] per row."""
  if len(features) != len(labels) or len(features) != len(images):
    raise ValueError(f"{len(features)} features, {len(labels)} labels and {len(images)} images")
  folder = epath.Path(folder)
  here = folder / "embeddings" / f"{step:08d}"
  here.mkdir(parents=True, exist_ok=True)
  (here / "features.tsv").write_text("".join("\t".join(f"{v:.5g}" for v in row) + "\n" for row in features))
  (here / "labels.tsv").write_text("".join(label.replace("\t", " ").replace("\n", " ") + "\n" for label in labels))
  sprite, side = _sprite(images)
  (here / "sprite.png").write_bytes(sprite)
  steps = sorted(p.name for p in (folder / "embeddings").iterdir() if p.name.isdigit())
  for old in steps[:-KEEP]:
    (folder / "embeddings" / old).rmtree()
  entries = []
  for name in steps[-KEEP:]:
    entries.append(f'embeddings {{\n  tensor_name: "test features, step {int(name)}"\n'
                   f'  tensor_path: "embeddings/{name}/features.tsv"\n'
                   f'  metadata_path: "embeddings/{name}/labels.tsv"\n'
                   f'  sprite {{\n    image_path: "embeddings/{name}/sprite.png"\n'
                   f"    single_image_dim: {side}\n    single_image_dim: {side}\n  }}\n}}\n")
  (folder / "projector_config.pbtxt").write_text("".join(entries))
