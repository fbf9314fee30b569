#!/usr/bin/env bash
# The first long-schedule accuracy figures: SimCLR, BYOL and VICReg with ResNet-18 (CIFAR stem, bfloat16) on
# Fashion-MNIST, on one GPU, for EPOCHS epochs each; kNN every EVAL_EVERY epochs, a linear probe at the end.
# Prints one row per method (kNN, linear top-1, pretraining seconds) from each run's results.json.
#
# The GPU machine has no network and no Fashion-MNIST: prepare the TFDS records here (small: ~30 MB) into the
# working tree and carry them, with the wheels benchmarks/speed/gpu.sh fetches:
#   python -m jaxssl.data.prepare fashion_mnist --from /usr/share/datasets/fashion-mnist --data_dir .tfds
#   bash benchmarks/speed/gpu.sh fetch
# then on the GPU machine (carry .tfds and .whl):
#   bash benchmarks/accuracy/gpu_accuracy.sh
# Environment: EPOCHS (20; about 10 minutes for the three on an H200 is the aim: lower it on a smaller GPU),
# EVAL_EVERY (5), METHODS (simclr,byol,vicreg), DATA_DIR (.tfds), CELL_TIMEOUT (240 s per method, compilation
# and evaluation included), PYTHON (python3), WHEELS (.whl), RUNS (runs/gpu_accuracy); ENCODER (resnet18) and
# COMPUTE_DTYPE (bfloat16) to try the script on a CPU with the small ResNet.
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEELS=${WHEELS:-.whl}
PYTHON=${PYTHON:-python3}
EPOCHS=${EPOCHS:-20}
EVAL_EVERY=${EVAL_EVERY:-5}
DATA_DIR=${DATA_DIR:-.tfds}
RUNS=${RUNS:-runs/gpu_accuracy}
CELL_TIMEOUT=${CELL_TIMEOUT:-240}
METHODS=${METHODS:-simclr,byol,vicreg}
ENCODER=${ENCODER:-resnet18}
COMPUTE_DTYPE=${COMPUTE_DTYPE:-bfloat16}

if compgen -G "$WHEELS/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/jaxssl-site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/jaxssl-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
[[ -d "$DATA_DIR/fashion_mnist" ]] || { echo "error: DATA_DIR=$DATA_DIR has no fashion_mnist/ (see the header)" >&2; exit 2; }
"$PYTHON" -c "import jax; print('jax', jax.__version__, jax.devices())"

for method in ${METHODS//,/ }; do
  workdir="$RUNS/$method"
  rm -rf "$workdir"
  echo "== $method: $ENCODER, $EPOCHS epochs"
  timeout "$CELL_TIMEOUT" "$PYTHON" -m jaxssl.main --config "configs/$method.py" --workdir "$workdir" \
    --config.model.encoder="$ENCODER" --config.model.compute_dtype="$COMPUTE_DTYPE" \
    --config.data.data_dir="$DATA_DIR" --config.train.num_epochs="$EPOCHS" --config.train.log_every=100 \
    --config.eval.every_epochs="$EVAL_EVERY" --config.eval.linear_probe=True \
    || echo "$method: stopped (exit $?; CELL_TIMEOUT=$CELL_TIMEOUT s)"
done

"$PYTHON" - "$RUNS" "$EPOCHS" "$ENCODER" <<'PY'
import json, os, sys
runs, epochs, encoder = sys.argv[1:4]
print(f"\n| method ({encoder}, {epochs} epochs) | kNN per evaluation | kNN top-1 | linear top-1 | pretraining s |")
print("|---|---|---|---|---|")
for method in sorted(os.listdir(runs)):
  path = os.path.join(runs, method, "results.json")
  if not os.path.exists(path):
    print(f"| {method} | not finished | | | |")
    continue
  with open(path) as f:
    record = json.load(f)
  r = record["results"]
  curve = ", ".join(f"{e['epoch']:.3g}: {100 * e['knn_accuracy']:.2f}%" for e in record["evals"])
  print(f"| {method} | {curve} | {100 * r['knn_accuracy']:.2f}% | {100 * r.get('linear_top1', float('nan')):.2f}% "
        f"| {r['train_seconds']:.0f} |")
PY
