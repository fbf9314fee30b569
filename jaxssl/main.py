"""Entry point: ``python -m jaxssl.main --config configs/vicreg.py --workdir runs/vicreg [--config.x=y ...]``."""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/NAME.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results (and checkpoints).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv) -> int:
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    return 2
  from jaxssl import train
  from jaxssl.checkpoint import CheckpointError
  from jaxssl.data import DataError
  from jaxssl.train import TrainingError
  from jaxssl.validate import ConfigError

  try:
    config = _CONFIG.value
    config.keys()                 # ml_collections defers a config file's load error to the first access
  except OSError as e:
    print(f"error: --config: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  try:
    train.run(config, _WORKDIR.value)
  except (ConfigError, DataError, CheckpointError, TrainingError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag or config override turned into one line and exit code 2."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError) as e:
    raw = str(e).strip("\"'")
    message = " ".join(raw.split())
    if isinstance(e, (AttributeError, KeyError)):
      message = f"no such config field {raw!r}"
    culprits = [a for a in argv[1:] if a.startswith("--config.") and raw and raw in a]
    print(f"error: {culprits[0] + ': ' if culprits else ''}{message}", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
