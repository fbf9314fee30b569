#!/usr/bin/env bash
# N processes of one run on this machine, over loopback (CPU: each process gets DEVICES_PER_PROCESS devices).
#
#   launch/local.sh 2 --config configs/simclr.py --workdir runs/simclr_2proc [--config.x=y ...]
#
# Environment: PORT (coordinator port, default 12355), DEVICES_PER_PROCESS (CPU devices each, default 4).
# Exits with the first non-zero exit code of the processes; stops the others when one fails.
set -euo pipefail
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 NUM_PROCESSES --config configs/NAME.py --workdir DIR [--config.x=y ...]" >&2
  exit 2
fi
num_processes=$1
shift
port=${PORT:-12355}
devices=${DEVICES_PER_PROCESS:-4}
export JAXSSL_COORDINATOR="127.0.0.1:${port}" JAXSSL_NUM_PROCESSES="${num_processes}"
export XLA_FLAGS="${XLA_FLAGS:-} --xla_force_host_platform_device_count=${devices}"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for ((i = 0; i < num_processes; i++)); do
  JAXSSL_PROCESS_ID=$i python3 -m jaxssl.main --distributed "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
  wait "$pid" || { code=$?; [ "$status" -eq 0 ] && status=$code; kill "${pids[@]}" 2>/dev/null || true; }
done
trap - EXIT
exit "$status"
