"""What the data layer raises: bad or missing data (``DataError``, one line naming the config field), one
unreadable image (``BadImage``), a read that hung (``ReadTimeout``) and a wait stopped by its caller
(``Stopped``)."""

from __future__ import annotations


class DataError(ValueError):
  """Bad or missing data; the message names the config field and what to do."""


class BadImage(DataError):
  """One image cannot be read or decoded: ``where`` (its file, or the example), ``reason``, and ``index`` in its
  split where known (``jaxssl.data.bad_images`` substitutes the example)."""

  def __init__(self, where: str, reason: str, index: int | None = None):
    super().__init__(f"cannot read image {where!r}: {reason}")
    self.where, self.reason, self.index = where, reason, index


class ReadTimeout(DataError):
  """A read gave nothing within ``config.data.read_timeout_s`` (a hung network mount, a FIFO named x.jpg)."""


def read_timeout(timeout_s: float, what: str) -> ReadTimeout:
  return ReadTimeout(f"config.data.read_timeout_s={timeout_s:g}: {what} gave nothing for {timeout_s:g} s (a hung "
                     "read: a stalled network mount, or a file that blocks when read?); fix the data, or raise "
                     "the limit")


class Stopped(Exception):
  """A wait for data stopped because its caller asked (SIGTERM during a slow read)."""
