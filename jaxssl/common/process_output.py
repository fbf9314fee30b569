"""One console for a multi-process run: each line printed once, not once per process.

Every process of a run executes the same code, so each would print every progress and result line, and JAX's
CPU collectives (Gloo, compiled into jaxlib) write ``[Gloo] Rank N is connected to ...`` lines straight to file
descriptor 1 from C++, where no Python logging setting reaches. ``filter_stdout`` routes descriptor 1 through a
pipe and a forwarding thread: process 0 passes everything but Gloo's lines; the other processes pass only their
``warning:`` lines (a bad image in their part of the batch, say), prefixed with the process. Standard error is
untouched: errors and tracebacks of every process still show. ``JAXSSL_ALL_PROCESSES_PRINT=1`` turns the
filter off (every process prints everything, as before).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading

GLOO = b"[Gloo] "
WARNING = b"warning:"
ALL_PROCESSES_VARIABLE = "JAXSSL_ALL_PROCESSES_PRINT"


def keeps(line: bytes, process_index: int) -> bytes | None:
  """What of one output line (with its newline) reaches the console: the line, a prefixed line, or None."""
  if line.startswith(GLOO):
    return None
  if process_index == 0:
    return line
  return b"process %d: %s" % (process_index, line) if line.startswith(WARNING) else None


def _forward(read_fd: int, console: int, process_index: int) -> None:
  """Copies whole lines from the pipe to the console until the pipe's write end closes. A console that has
  gone (``| head``) is not written again, but the pipe is still drained so that the process never blocks."""
  pending, open_console = b"", True

  def write(data: bytes) -> None:
    nonlocal open_console
    try:
      while data and open_console:
        data = data[os.write(console, data):]
    except OSError:
      open_console = False

  while chunk := os.read(read_fd, 1 << 16):
    *lines, pending = (pending + chunk).split(b"\n")
    write(b"".join(kept for line in lines if (kept := keeps(line + b"\n", process_index))))
  if pending and (kept := keeps(pending, process_index)):
    write(kept)
  os.close(read_fd)


def filter_stdout(process_index: int, process_count: int) -> None:
  """Installs the filter for the rest of the process (nothing in a one-process run, or when
  JAXSSL_ALL_PROCESSES_PRINT=1); at exit descriptor 1 is restored and what is in flight is forwarded."""
  if process_count < 2 or os.environ.get(ALL_PROCESSES_VARIABLE) == "1":
    return
  sys.stdout.flush()
  console = os.dup(1)
  read_fd, write_fd = os.pipe()
  os.dup2(write_fd, 1)
  os.close(write_fd)
  thread = threading.Thread(target=_forward, args=(read_fd, console, process_index), daemon=True,
                            name="jaxssl-stdout-filter")
  thread.start()

  def restore() -> None:
    try:
      sys.stdout.flush()
    except (OSError, ValueError):
      pass
    os.dup2(console, 1)        # closes the pipe's only write end: the thread reads the rest, then EOF
    thread.join(timeout=10)

  atexit.register(restore)
