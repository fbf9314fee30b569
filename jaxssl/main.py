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
  from jaxssl.data import DataError
  from jaxssl.validate import ConfigError

  try:
    train.run(_CONFIG.value, _WORKDIR.value)
  except (ConfigError, DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
