"""A read that cannot hang the run: done in a daemon thread and waited on a quarter second at a time, so that
it gives up after ``config.data.read_timeout_s`` (a stalled mount, a FIFO named x.jpg) and stops at once when
the run is asked to (SIGTERM during an evaluation). The thread of a read that never returns is left behind; as
a daemon it cannot keep the process alive. Training batches have the same guard in ``Pipeline.next``; this one
serves the reads outside it: the evaluation splits, the image-shape probe and the in-memory cache."""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, TypeVar

from jaxssl.data.errors import Stopped, read_timeout

T = TypeVar("T")


def guarded(read: Callable[[], T], timeout_s: float = 0.0, what: str = "a read",
            stop: Callable[[], bool] | None = None) -> T:
  """``read()``, or ReadTimeout after ``timeout_s`` seconds (0: never), or Stopped as soon as ``stop()`` is
  true. Without a timeout or a stop it is called here, directly."""
  if not timeout_s and stop is None:
    return read()
  if stop is not None and stop():
    raise Stopped
  answer: queue.SimpleQueue = queue.SimpleQueue()

  def work():
    try:
      answer.put((read(), None))
    except BaseException as e:      # handed to the caller, raised there
      answer.put((None, e))

  threading.Thread(target=work, name="jaxssl-guarded-read", daemon=True).start()
  start = time.monotonic()
  while True:
    try:
      value, error = answer.get(timeout=0.25)
      break
    except queue.Empty:
      if stop is not None and stop():
        raise Stopped from None
      if timeout_s and time.monotonic() - start > timeout_s:
        raise read_timeout(timeout_s, what) from None
  if error is not None:
    raise error
  return value
