"""Weights in and out at full size, against the PyTorch libraries themselves: timm's ViT-B/16, DINOv2's ViT-L/14
with registers (timm's layout) and ResNet-50, and transformers' DINOv2 ViT-S/14, with random weights; each
imported by jaxssl (features compared with the library's on the same images) and exported back (the library
loads the export with strict keys; its features compared again). ``vit_b16_npz`` exports ViT-B/16 as big_vision's
npz, read back by timm's ``_load_weights``.

    python benchmarks/parity/weights_parity.py --torch_python .venv-lightly/bin/python [--models vit_b16,resnet50]

Prints a table: the largest feature difference, absolute and relative to the features' largest magnitude, for
the import and the round trip. Nothing is downloaded; the models are made here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT

# name -> (library, constructor expression, image size, jaxssl load options, export format)
MODELS = {
    "vit_b16": ("timm", "timm.create_model('vit_base_patch16_224', num_classes=0)", 224, {}, "timm"),
    "dinov2_l14_reg": ("timm", "timm.create_model('vit_large_patch14_reg4_dinov2', num_classes=0, img_size=224)",
                       224, {}, "timm"),
    "vit_b16_npz": ("timm", "timm.create_model('vit_base_patch16_224', num_classes=0)", 224, {}, "npz"),
    "resnet50": ("timm", "timm.create_model('resnet50', num_classes=0)", 224, {}, "timm"),
    "hf_dinov2_s14": ("transformers", "transformers.Dinov2Model(transformers.Dinov2Config(image_size=224, "
                      "patch_size=14, hidden_size=384, num_hidden_layers=12, num_attention_heads=6))", 224, {},
                      "transformers"),
}

MAKE = """
import sys, numpy as np, torch, timm, transformers
from timm.models._hub import save_for_hf
library, expression, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
model = eval(expression).eval()
with torch.no_grad():
    for name, p in model.named_parameters():          # every tensor away from its initialisation
        p.add_(0.02 * torch.randn_like(p))
    for name, b in model.named_buffers():
        if name.endswith("running_var"):
            b.uniform_(0.5, 1.5)
        elif name.endswith("running_mean"):
            b.normal_(0, 0.2)
images = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(1))
if library == "timm":
    save_for_hf(model, out, safe_serialization=True)
else:
    model.save_pretrained(out)
with torch.no_grad():
    result = model(images) if library == "timm" else model(pixel_values=images).pooler_output
np.savez(out + "/features.npz", images=images.numpy(), features=result.numpy())
"""

CHECK = """
import sys, numpy as np, torch, timm, transformers
library, folder, features = sys.argv[1], sys.argv[2], sys.argv[3]
saved = np.load(features)
if folder.endswith(".npz"):                            # big_vision's layout, read by timm's own reader
    from timm.models.vision_transformer import _load_weights
    model = timm.create_model("vit_base_patch16_224", num_classes=0, no_embed_class=True).eval()
    _load_weights(model, folder)
elif library == "timm":
    model = timm.create_model("local-dir:" + folder, pretrained=True).eval()
else:
    model, info = transformers.AutoModel.from_pretrained(folder, output_loading_info=True)
    assert not any(info.values()), info
    model.eval()
with torch.no_grad():
    x = torch.from_numpy(saved["images"])
    out = model(x) if library == "timm" else model(pixel_values=x).pooler_output
np.save(features.replace(".npz", "_back.npy"), out.numpy())
"""


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--torch_python", required=True, help="a Python with torch, timm and transformers")
  parser.add_argument("--models", default=",".join(MODELS))
  args = parser.parse_args()

  import jaxssl
  from jaxssl import export

  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for name in args.models.split(","):
      library, expression, size, options, fmt = MODELS[name]
      source = os.path.join(tmp, name)
      out = os.path.join(tmp, name + ("_export.npz" if fmt == "npz" else "_export"))
      subprocess.run([args.torch_python, "-c", MAKE, library, expression, str(size), source], check=True)
      saved = np.load(os.path.join(source, "features.npz"))
      start = time.perf_counter()
      module, variables = jaxssl.load_encoder(source, **options)
      images = saved["images"].transpose(0, 2, 3, 1)
      ours = np.asarray(module.apply(variables, images, train=False))
      seconds = time.perf_counter() - start
      export.export(source, out, format=fmt)
      subprocess.run([args.torch_python, "-c", CHECK, library, out, os.path.join(source, "features.npz")],
                     check=True)
      back = np.load(os.path.join(source, "features_back.npy"))
      scale = np.abs(saved["features"]).max()
      rows.append((name, library, ours.shape[1], np.abs(ours - saved["features"]).max(),
                   np.abs(ours - saved["features"]).max() / scale, np.abs(back - saved["features"]).max() / scale,
                   seconds))
  print("| model | library | width | import: largest difference | relative | export read by the library: "
        "relative | jaxssl import + features, s |")
  print("|---|---|---|---|---|---|---|")
  for name, library, width, absolute, relative, back, seconds in rows:
    print(f"| {name} | {library} | {width} | {absolute:.2e} | {relative:.2e} | {back:.2e} | {seconds:.1f} |")


if __name__ == "__main__":
  main()
