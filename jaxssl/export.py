"""``python -m jaxssl.export SOURCE OUT``: a trained encoder (a ViT, or a ResNet in torchvision's names) written as
a timm hub folder.

    python -m jaxssl.export runs/dino_vit weights/dino_vit            # a run's encoder (its latest checkpoint)
    python -m jaxssl.export runs/dino_vit weights/dino_vit --step 400

Then, in PyTorch (``pip install timm safetensors``)::

    import timm
    model = timm.create_model("local-dir:weights/dino_vit", pretrained=True)     # strict keys
    features = model(x)                   # [N, D], what jaxssl.load_encoder(SOURCE) gives on the same images

SOURCE is a jaxssl run directory or anything ``jaxssl.load_encoder`` reads (a timm folder or weights file). OUT
must not exist. ``--format transformers`` writes a ViT as ``Dinov2Model`` / ``Dinov2WithRegistersModel`` (a class
token) or ``IJepaModel`` (none), for ``transformers.AutoModel.from_pretrained(OUT)``; ``--format npz`` writes a ViT
as big_vision's ``params/...`` arrays in one file OUT.npz (``timm.models.vision_transformer._load_weights`` reads
it into a timm ViT made with ``no_embed_class=True``). What the target cannot express (a ResNet with Flax's SAME
padding or the CIFAR stem for torchvision; MAE's fc_norm pool for transformers; registers, LayerScale or SwiGLU
for big_vision) is refused. Bad input: one line on stderr, exit code 2.
"""

from __future__ import annotations

import sys


def export(source: str, out: str, step: int | None = None, format: str = "timm",  # noqa: A002
           **weights_options) -> str:
  """Writes the encoder in ``source`` as a ``format`` (timm | transformers folder, npz file) ``out``; returns
  ``out``."""
  from jaxssl import weights
  from jaxssl.runs import restore

  module, variables = restore.load_encoder(source, step, **weights_options)
  kernel = variables["params"]["patch_embed"]["kernel"] if "patch_embed" in variables["params"] else None
  channels = int(kernel.shape[2]) if kernel is not None else 3
  return weights.export(module, variables, out, channels, format)


def main(argv: list[str] | None = None) -> int:
  from jaxssl.common import command_line

  parser = command_line.ArgumentParser(prog="python -m jaxssl.export", description=__doc__.splitlines()[0])
  parser.add_argument("source", help="a jaxssl run directory, a timm folder or a weights file")
  parser.add_argument("out", help="the folder to write (must not exist)")
  parser.add_argument("--format", choices=["timm", "transformers", "npz"], default="timm",
                      help="the layout to write: timm's or transformers' folder, or big_vision's .npz file")
  parser.add_argument("--step", type=command_line.non_negative_int, default=None,
                      help="a run's checkpoint step (default: the latest)")
  args = parser.parse_for_jax(argv)
  from jaxssl.runs.checkpoint import CheckpointError

  try:
    written = export(args.source, args.out, args.step, args.format)
  except CheckpointError as e:            # WeightsError too
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {written} ({args.format}" + ("" if args.format == "npz" else ": config.json, model.safetensors") + ")")
  return 0


if __name__ == "__main__":
  sys.exit(main())
