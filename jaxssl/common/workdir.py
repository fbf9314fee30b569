"""Run directories anywhere: a local path or a cloud URL (``gs://bucket/runs/x``, ``s3://...``).

Every file a run reads or writes (config.json, checkpoints, metrics.jsonl, TensorBoard, results.json, eval.json,
plots) goes through ``etils.epath``, the path API orbax itself uses: local paths through ``os``, URLs through
TensorFlow's gfile or fsspec (gcsfs, s3fs). Object stores cannot append to a file, so ``LineLog`` rewrites its
file at flush points there, and TensorBoard, whose writer only knows local files, writes to a local mirror
that is copied up (``Mirror``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Callable

from etils import epath


def is_url(workdir: str | os.PathLike) -> bool:
  return "://" in str(workdir)


def resolve(workdir: str | os.PathLike) -> epath.Path:
  """The workdir as a Path: URLs as they are (``os.path.abspath`` would turn ``gs://b/x`` into ``./gs:/b/x``),
  local paths made absolute."""
  workdir = str(workdir)
  if is_url(workdir):
    _say_each_storage_warning_once()
    return epath.Path(workdir)
  return epath.Path(os.path.abspath(workdir))


class _OnceEach(logging.Filter):
  """Lets each distinct message through once: gcsfs repeats its warning that it found no credentials and could
  not tell the bucket's type on every file operation (500 lines for a 12-step run)."""

  def __init__(self):
    super().__init__()
    self.seen: set[str] = set()

  def filter(self, record: logging.LogRecord) -> bool:
    text = record.getMessage()
    if text in self.seen:
      return False
    self.seen.add(text)
    return True


def _say_each_storage_warning_once() -> None:
  logger = logging.getLogger("gcsfs")
  if not any(isinstance(f, _OnceEach) for f in logger.filters):
    logger.addFilter(_OnceEach())


class LineLog:
  """A text file of lines (metrics.jsonl) that is appended to locally and rewritten whole on object stores.

  ``lines`` is the file's content; ``append`` adds a line (written at once locally, at the next ``flush``
  elsewhere); ``keep(predicate)`` keeps only the lines it accepts (a resumed run drops the steps after its
  checkpoint), in the file from the next line written on.
  """

  def __init__(self, path: epath.Path):
    self.path = path
    self.local = not is_url(path)
    self.lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    self.lines = [line if line.endswith("\n") else line + "\n" for line in self.lines if line.strip()]
    self._pending = False
    self._stale = False                   # the file holds lines that ``keep`` dropped

  def keep(self, predicate) -> None:
    """Keeps only the lines ``predicate`` accepts. The file itself is rewritten with the next line appended, so
    a run that stops before it writes one leaves the old lines in place."""
    kept = [line for line in self.lines if predicate(line)]
    self._stale = self._stale or kept != self.lines
    self.lines = kept

  def append(self, line: str) -> None:
    line = line if line.endswith("\n") else line + "\n"
    self.lines.append(line)
    if self.local and not self._stale:
      with self.path.open("a") as f:
        f.write(line)
    elif self.local:
      self._write_whole()
    else:
      self._pending = True

  def flush(self) -> None:
    if self._pending:
      self._write_whole()

  def _write_whole(self) -> None:
    """The file replaced by ``lines`` (locally through a temporary file and a rename: whole or not at all)."""
    if self.local:
      partial = self.path.parent / (self.path.name + ".partial")
      partial.write_text("".join(self.lines))
      partial.replace(self.path)
    else:
      self.path.write_text("".join(self.lines))
    self._pending = self._stale = False


class Mirror:
  """A local directory that stands for ``remote`` (for writers that only write local files: TensorBoard).

  Locally, ``path`` is ``remote`` itself. For a URL, the remote files whose names ``mine`` accepts (TensorBoard's
  event files, in a workdir that holds other files too) are copied down at the start, and the local ones
  copied up at ``push``.
  """

  def __init__(self, remote: epath.Path, mine: Callable[[str], bool] = lambda name: True):
    self.remote = remote
    if not is_url(remote):
      self.path, self._temporary = str(remote), None
      return
    self._temporary = tempfile.mkdtemp(prefix="jaxssl-mirror-")
    self.path = self._temporary
    if remote.exists():
      for item in remote.iterdir():
        if mine(item.name) and item.is_file():
          with open(os.path.join(self.path, item.name), "wb") as f:
            f.write(item.read_bytes())

  def push(self) -> None:
    if self._temporary is None:
      return
    self.remote.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(self.path):
      with open(os.path.join(self.path, name), "rb") as f:
        (self.remote / name).write_bytes(f.read())

  def close(self) -> None:
    self.push()
    if self._temporary is not None:
      shutil.rmtree(self._temporary, ignore_errors=True)
