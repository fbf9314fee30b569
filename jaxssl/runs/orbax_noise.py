"""What orbax and TensorStore print that a jaxssl user should not have to read; ``install()`` filters it.

- orbax warns "Metadata file does not exist" when it looks for optional step metadata (_CHECKPOINT_METADATA)
  that jaxssl's layout does not write; on a healthy resume a user reads it as damage.
- A failed background write (a full disk, a lost bucket) is logged by orbax at ERROR, with its traceback, from
  each thread it passes through (4 records for one full disk), while ``jaxssl.runs.checkpoint.Checkpointer`` reports
  the same failure as one line (``CheckpointError``). Those records are dropped unless the user asked for
  orbax's log (``--verbosity=0``, which sets absl's level to INFO).
- After such a failure orbax closes its event loop while TensorStore still holds pending writes; each one then
  completes into ``loop.call_soon_threadsafe`` and TensorStore prints the ``RuntimeError: Event loop is
  closed`` as an unraisable exception: ~75 bare tracebacks. Only those are dropped from sys.unraisablehook.
- The same failure also leaves orbax's write tasks and TensorStore's futures with exceptions nobody awaited;
  when the garbage collector finds them (whether it does before exit is timing), asyncio's logger prints each
  as "Task (Future, _GatheringFuture) exception was never retrieved" with its traceback. Those records are
  dropped when the exception went through orbax's code or is TensorStore's own (no Python frames, a "CODE: "
  status message), unless orbax's log was asked for.
"""

from __future__ import annotations

import logging
import re
import sys

_ORBAX_PACKAGE = "/orbax/checkpoint/"
_UNRETRIEVED = re.compile(r"\w+ exception was never retrieved\n")   # Task, Future, _GatheringFuture, ...
_TENSORSTORE_STATUS = re.compile(r"[A-Z_]+: ")       # absl::Status codes: OUT_OF_RANGE, RESOURCE_EXHAUSTED, ...


def _asked_for_logs() -> bool:
  return logging.getLogger("absl").getEffectiveLevel() <= logging.INFO


class _QuietMissingMetadata(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Metadata file does not exist")


class _QuietReportedWriteErrors(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    from_orbax = _ORBAX_PACKAGE in record.pathname.replace("\\", "/")
    return _asked_for_logs() or not (from_orbax and record.levelno >= logging.ERROR and record.exc_info)


def _is_orbax_write_error(error: BaseException | None) -> bool:
  if error is None:
    return False
  tb = error.__traceback__
  if tb is None:
    return isinstance(error, ValueError) and bool(_TENSORSTORE_STATUS.match(str(error)))
  while tb is not None:
    if _ORBAX_PACKAGE in tb.tb_frame.f_code.co_filename.replace("\\", "/"):
      return True
    tb = tb.tb_next
  return False


class _QuietUnretrievedWriteErrors(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    if _asked_for_logs() or not _UNRETRIEVED.match(str(record.msg)) or not record.exc_info:
      return True
    return not _is_orbax_write_error(record.exc_info[1])


def is_closed_loop_noise(unraisable) -> bool:
  """A ``sys.unraisablehook`` argument that is TensorStore's late callback into orbax's closed event loop."""
  if unraisable.exc_type is not RuntimeError or str(unraisable.exc_value) != "Event loop is closed":
    return False
  tb = unraisable.exc_traceback
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  code = tb.tb_frame.f_code if tb is not None else None
  return code is not None and code.co_name == "_check_closed" and "asyncio" in code.co_filename


_LOG_FILTERS = {"absl": (_QuietMissingMetadata(), _QuietReportedWriteErrors()),
                "asyncio": (_QuietUnretrievedWriteErrors(),)}


def install() -> None:
  """Adds the filters (each once: a second call changes nothing)."""
  for logger_name, log_filters in _LOG_FILTERS.items():
    for log_filter in log_filters:
      logging.getLogger(logger_name).addFilter(log_filter)
  if getattr(sys.unraisablehook, "_jaxssl_filter", False):
    return
  previous = sys.unraisablehook

  def hook(unraisable) -> None:
    if not is_closed_loop_noise(unraisable):
      previous(unraisable)

  hook._jaxssl_filter = True
  sys.unraisablehook = hook
