"""What the benchmark scripts share: the repository's paths, the peers' Python and scripts, and running a worker
that prints its result as its last JSON line. Standard library only: the peers' venv imports it too.

Every script starts the same way, so that ``python benchmarks/GROUP/NAME.py`` works from any directory::

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from benchmarks import common
"""

from __future__ import annotations

import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "benchmarks", "peers")
# The venv with PyTorch, lightly, timm and transformers (README: "Benchmarks").
LIGHTLY_PYTHON = os.path.join(ROOT, ".venv-lightly", "bin", "python")


def peer(name: str) -> str:
  """The path of a PyTorch-side script (``benchmarks/peers/NAME``)."""
  return os.path.join(PEERS, name)


class CellFailed(SystemExit):
  """A worker failed or printed no result: the message says which command and shows its stderr's end. Uncaught,
  it ends the script with that message (exit code 1); a table of many cells catches it per cell."""

  def __init__(self, message: str):
    super().__init__(message)
    self.message = message

  def __str__(self) -> str:
    return self.message


def last_json(command: list[str], env_extra: dict | None = None, timeout: float | None = 3600) -> dict:
  """Runs ``command`` in the repository, in this environment with ``env_extra`` set, and returns the last line
  of its stdout that is a JSON object."""
  env = dict(os.environ, **(env_extra or {}))
  try:
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=timeout)
  except subprocess.TimeoutExpired:
    raise CellFailed(f"{' '.join(command)} ran past {timeout} s") from None
  lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
  if result.returncode != 0 or not lines:
    raise CellFailed(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
  return json.loads(lines[-1])
