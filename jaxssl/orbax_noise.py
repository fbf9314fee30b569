"""What orbax and TensorStore print that a jaxssl user should not have to read; ``install()`` filters it.

- orbax warns "Metadata file does not exist" when it looks for optional step metadata (_CHECKPOINT_METADATA)
  that jaxssl's layout does not write; on a healthy resume a user reads it as damage.
- A failed background write (a full disk, a lost bucket) is logged by orbax at ERROR, with its traceback, from
  each thread it passes through (4 records for one full disk), while ``jaxssl.checkpoint.Checkpointer`` reports
  the same failure as one line (``CheckpointError``). Those records are dropped unless the user asked for
  orbax's log (``--verbosity=0``, which sets absl's level to INFO).
- After such a failure orbax closes its event loop while TensorStore still holds pending writes; each one then
  completes into ``loop.call_soon_threadsafe`` and TensorStore prints the ``RuntimeError: Event loop is
  closed`` as an unraisable exception: ~75 bare tracebacks. Only those are dropped from sys.unraisablehook.
"""

from __future__ import annotations

import logging
import sys

_ORBAX_PACKAGE = "/orbax/checkpoint/"


class _QuietMissingMetadata(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Metadata file does not exist")


class _QuietReportedWriteErrors(logging.Filter):

  def filter(self, record: logging.LogRecord) -> bool:
    from_orbax = _ORBAX_PACKAGE in record.pathname.replace("\\", "/")
    asked_for_logs = logging.getLogger("absl").getEffectiveLevel() <= logging.INFO
    return asked_for_logs or not (from_orbax and record.levelno >= logging.ERROR and record.exc_info)


def is_closed_loop_noise(unraisable) -> bool:
  """A ``sys.unraisablehook`` argument that is TensorStore's late callback into orbax's closed event loop."""
  if unraisable.exc_type is not RuntimeError or str(unraisable.exc_value) != "Event loop is closed":
    return False
  tb = unraisable.exc_traceback
  while tb is not None and tb.tb_next is not None:
    tb = tb.tb_next
  code = tb.tb_frame.f_code if tb is not None else None
  return code is not None and code.co_name == "_check_closed" and "asyncio" in code.co_filename


_LOG_FILTERS = (_QuietMissingMetadata(), _QuietReportedWriteErrors())


def install() -> None:
  """Adds the filters (each once: a second call changes nothing)."""
  for log_filter in _LOG_FILTERS:
    logging.getLogger("absl").addFilter(log_filter)
  if getattr(sys.unraisablehook, "_jaxssl_filter", False):
    return
  previous = sys.unraisablehook

  def hook(unraisable) -> None:
    if not is_closed_loop_noise(unraisable):
      previous(unraisable)

  hook._jaxssl_filter = True
  sys.unraisablehook = hook
