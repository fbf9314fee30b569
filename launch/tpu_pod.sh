#!/usr/bin/env bash
# One run on every worker of a Cloud TPU VM pod slice (v4/v5e/v5p), started from your workstation.
#
#   TPU_NAME=my-pod ZONE=us-central2-b launch/tpu_pod.sh --config configs/simclr.py \
#       --workdir gs://my-bucket/runs/simclr --config.model.encoder=resnet50 ...
#
# Every worker gets the same command; jax.distributed.initialize() detects the pod (--distributed), each worker
# reads its own shard of the data, and orbax writes one checkpoint (use a gs:// workdir that all workers see).
# Set up once: the repository checked out at REPO_DIR on every worker (the first block does it from GIT_URL),
# the TFDS data in a bucket or on each worker (config.data.data_dir).
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"
REPO_DIR=${REPO_DIR:-jaxssl}
GIT_URL=${GIT_URL:-}
PROJECT_FLAG=${PROJECT:+--project=${PROJECT}}
args=$(printf '%q ' "$@")
setup=""
if [ -n "$GIT_URL" ]; then
  setup="[ -d ${REPO_DIR} ] || git clone ${GIT_URL} ${REPO_DIR}; cd ${REPO_DIR} && git pull --ff-only && \
python3 -m pip install -q -e . 'jax[tpu]' && cd ~ && "
fi
gcloud compute tpus tpu-vm ssh "${TPU_NAME}" --zone="${ZONE}" ${PROJECT_FLAG} --worker=all --command \
  "${setup}cd ${REPO_DIR} && python3 -m jaxssl.main --distributed ${args}"
