#!/usr/bin/env bash
# jaxssl against lightly on one GPU: ResNet-18 (CIFAR stem) at 32x32x3, batch 512, bfloat16, SimCLR/BYOL/VICReg;
# MAE's ViT-B/16 step at 224 px (benchmarks/speed/mae_throughput.py); images/s and MFU of the MAE ViT-B/16 and DINO
# ViT-S/16 steps with and without remat, DINO's next to lightly's (benchmarks/speed/vit_mfu.py).
# Prints images/s and seconds per CIFAR-10 epoch (50,000 images) of the whole training step, side by side;
# lightly also with channels-last tensors, the layout PyTorch recommends for convolutions on GPUs.
#
# The GPU machine has PyTorch, JAX, Flax, optax and chex but no network; the few pure-Python packages it lacks
# travel as wheels. Once, on a machine with network, from the repository root:
#   bash benchmarks/speed/gpu.sh fetch            # lightly, dm-pix, ml-collections, timm -> .whl/ (Python 3.12 wheels)
# Then on the GPU machine, from the repository root (a few minutes):
#   bash benchmarks/speed/gpu.sh
# Then, at ImageNet scale: ResNet-50 (ImageNet stem) at 224 px, the SimCLR and BYOL steps against lightly's
# (batch BATCH_224), and `python -m jaxssl.main` end to end on generated JPEGs cropped on the host against the
# same step alone (benchmarks/speed/end_to_end.py): whether the host path keeps up. IMAGENET=0 skips that part.
# Environment: BATCH (512), STEPS (10 timed steps), CELL_TIMEOUT (240 s for one measurement, compilation
# included), METHODS (simclr,byol,vicreg), PYTHON (python3, the one with JAX), LIGHTLY_PYTHON (the one with
# PyTorch; default PYTHON), WHEELS (.whl), BATCH_224 (128), IMAGENET (1).
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEELS=${WHEELS:-.whl}
PYTHON=${PYTHON:-python3}

if [[ "${1:-}" == "fetch" ]]; then
  mkdir -p "$WHEELS"
  platforms=()
  for p in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do platforms+=(--platform "$p"); done
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$WHEELS" lightly==1.6.0 dm-pix==0.4.5 ml-collections==1.1.0 timm==1.0.31
  exit 0
fi

if compgen -G "$WHEELS/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/jaxssl-site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/jaxssl-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

"$PYTHON" -c "import jax, flax, optax, chex; print('jax', jax.__version__, 'flax', flax.__version__, 'optax',
  optax.__version__, 'chex', chex.__version__, jax.devices())"
"${LIGHTLY_PYTHON:-$PYTHON}" -c "import torch; print('torch', torch.__version__,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no CUDA device')"
"$PYTHON" benchmarks/speed/throughput.py --models resnet18 --batch "${BATCH:-512}" --dtype bfloat16 \
  --steps "${STEPS:-10}" --methods "${METHODS:-simclr,byol,vicreg}" --lightly_python "${LIGHTLY_PYTHON:-$PYTHON}" \
  --no_baseline --no_augment --lightly_channels_last --cell_timeout "${CELL_TIMEOUT:-240}"

# MAE with ViT-B/16 at 224 px (the paper's decoder, 512 wide, 8 blocks), batch 256, bfloat16, against lightly's
# MAE (timm ViT + MAEDecoderTIMM, bfloat16 autocast).
"$PYTHON" benchmarks/speed/mae_throughput.py --sizes base224 --dtype bfloat16 --steps "${STEPS:-10}" \
  --lightly_python "${LIGHTLY_PYTHON:-$PYTHON}" || true

# The ViT ImageNet steps with MFU: MAE ViT-B/16 (batch 256) and DINO ViT-S/16 (batch 128, 2 x 224 + 8 x 96),
# bfloat16, with and without remat (images/s, TFLOP/s from XLA's count, MFU against the GPU's bf16 peak), and
# lightly's DINO step of the same recipe (bfloat16 autocast, no augmentation) with the ratio.
"$PYTHON" benchmarks/speed/vit_mfu.py --steps "${STEPS:-10}" --lightly_python "${LIGHTLY_PYTHON:-$PYTHON}" || true

if [[ "${IMAGENET:-1}" == 1 ]]; then
  "$PYTHON" benchmarks/speed/throughput.py --models resnet50 --batch "${BATCH_224:-128}" --dtype bfloat16 \
    --steps "${STEPS:-10}" --methods simclr,byol --lightly_python "${LIGHTLY_PYTHON:-$PYTHON}" \
    --no_baseline --no_augment --lightly_channels_last --cell_timeout "${CELL_TIMEOUT:-240}" || true
  "$PYTHON" benchmarks/speed/end_to_end.py --batch "${BATCH_224:-128}" --steps 60 --images 4096
fi
