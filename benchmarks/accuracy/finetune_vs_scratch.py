"""Fine-tuned test top-1 of a pretrained run's encoder against the same encoder from scratch, with the same
recipe and budget, at several label fractions (SimCLR's semi-supervised protocol), one run each.

    python benchmarks/accuracy/finetune_vs_scratch.py --pretrained runs/vicreg --out runs/ft_vicreg \\
        --config configs/finetune.py --fractions 1.0,0.1,0.01 --steps 470

Each fraction trains for the same number of steps (``--steps``; the epochs follow from the subset's size), so
pretrained and scratch, and the fractions, get the same budget. Prints a Markdown table; each run's workdir is
``OUT/FROM_FRACTION`` (rerunning reuses finished ones).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import subprocess
import sys
import time


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--pretrained", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--config", default="configs/finetune.py")
  parser.add_argument("--fractions", default="1.0,0.1,0.01")
  parser.add_argument("--steps", type=int, default=470)
  parser.add_argument("--extra", default="", help="more --config.x=y overrides, space-separated")
  parser.add_argument("--starts", default="pretrained,scratch",
                      help="which runs: the scratch runs of a recipe, seed and fraction are the same whatever the "
                           "pretraining, so a second pretrained encoder can skip them (--starts pretrained)")
  args = parser.parse_args()
  starts = args.starts.split(",")
  if not starts or any(s not in ("pretrained", "scratch") for s in starts):
    parser.error(f"--starts={args.starts!r}: a comma-separated list of pretrained and scratch")
  rows = []
  for fraction in [float(f) for f in args.fractions.split(",")]:
    for start in starts:
      workdir = pathlib.Path(args.out) / f"{start}_{fraction:g}"
      command = [sys.executable, "-m", "jaxssl.finetune", f"--config={args.config}", f"--pretrained={args.pretrained}",
                 f"--from={start}", f"--label_fraction={fraction}", f"--workdir={workdir}",
                 f"--config.train.num_steps={args.steps}", *args.extra.split()]
      t = time.perf_counter()
      result = subprocess.run(command, capture_output=True, text=True)
      if result.returncode:
        print(result.stderr[-2000:], file=sys.stderr)
        return result.returncode
      results = json.loads((workdir / "results.json").read_text())["results"]
      rows.append((fraction, start, results["train_examples"], results["top1"], results["top5"],
                   time.perf_counter() - t))
      print(f"{start} {fraction:g}: top-1 {100 * results['top1']:.2f}%", flush=True)
  print("\n| labels | start | train examples | steps | test top-1 | test top-5 | wall |")
  print("|---|---|---|---|---|---|---|")
  for fraction, start, examples, top1, top5, wall in rows:
    print(f"| {100 * fraction:g}% | {start} | {examples} | {args.steps} | {100 * top1:.2f}% | {100 * top5:.2f}% | "
          f"{wall / 60:.1f} min |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
