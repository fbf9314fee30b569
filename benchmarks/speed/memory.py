"""Host memory of a training run: resident memory over 1,000 steps (does it grow?) and the peak.

    python benchmarks/speed/memory.py [--config configs/simclr.py] [--steps 1000] [--batch 64] [overrides ...]

Runs ``python -m jaxssl.main`` as a child process (the real entry point: data pipeline thread, metrics,
checkpoints every ``train.checkpoint_every`` steps, the final evaluation) and reads its resident set size
(VmRSS in /proc) twice a second, together with the last step written to metrics.jsonl. Prints the RSS at
tenths of the run, the growth from the first logged tenth to the end of training, and the peak (VmHWM).
Linux only.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from benchmarks import common  # noqa: E402  (benchmarks/common.py: paths and the worker runner)
ROOT = common.ROOT


def _status(pid: int) -> dict[str, int]:
  """VmRSS and VmHWM of a process in MiB (empty once it has exited)."""
  try:
    with open(f"/proc/{pid}/status") as f:
      lines = f.read().splitlines()
  except OSError:
    return {}
  out = {}
  for line in lines:
    key, _, value = line.partition(":")
    if key in ("VmRSS", "VmHWM"):
      out[key] = int(value.split()[0]) // 1024
  return out


def _last_step(path: str) -> int:
  try:
    with open(path, "rb") as f:
      f.seek(max(0, os.path.getsize(path) - 4096))
      lines = [line for line in f.read().decode(errors="ignore").splitlines() if line.startswith("{")]
  except OSError:
    return 0
  for line in reversed(lines):
    try:
      return int(json.loads(line)["step"])
    except (ValueError, KeyError):
      continue
  return 0


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/simclr.py")
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("overrides", nargs="*", help="more --config.x=y style overrides, without the dashes")
  args = parser.parse_args()

  with tempfile.TemporaryDirectory() as workdir:
    command = [sys.executable, "-m", "jaxssl.main", f"--config={args.config}", f"--workdir={workdir}",
               f"--config.train.num_steps={args.steps}", f"--config.train.batch_size={args.batch}",
               "--config.eval.knn_at_init=False"] + [f"--config.{o}" for o in args.overrides]
    print(" ".join(command[1:]), flush=True)
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []                                     # (seconds, step, rss MiB)
    peak = 0
    while child.poll() is None:
      status = _status(child.pid)
      if status:
        peak = max(peak, status.get("VmHWM", 0))
        samples.append((time.perf_counter() - start, _last_step(os.path.join(workdir, "metrics.jsonl")),
                        status["VmRSS"]))
      time.sleep(0.5)
    stderr = child.stderr.read()
    if child.returncode != 0:
      raise SystemExit(f"error: the run failed ({child.returncode}):\n{stderr[-2000:]}")

  print(f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores; {args.config}, batch {args.batch}, "
        f"{args.steps} steps, {time.perf_counter() - start:.0f} s\n")
  print("| step | seconds | resident MiB |")
  print("|---|---|---|")
  rows = []
  for tenth in range(1, 11):
    target = args.steps * tenth // 10
    row = next((s for s in samples if s[1] >= target), None)
    if row:
      rows.append(row)
      print(f"| {row[1]} | {row[0]:.0f} | {row[2]} |")
  training = [s for s in samples if s[1] < args.steps]
  if rows and training:
    first, last = rows[0], training[-1]
    print(f"\ngrowth from step {first[1]} to step {last[1]}: {last[2] - first[2]:+d} MiB; "
          f"peak resident (VmHWM, whole run incl. evaluation): {peak} MiB")


if __name__ == "__main__":
  main()
