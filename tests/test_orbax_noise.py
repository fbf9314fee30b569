"""The filters of jaxssl.runs.orbax_noise drop exactly the library noise they name, and nothing else."""

import asyncio
import gc
import logging
import sys
import types

from jaxssl.runs import orbax_noise


def _unraisable(error: BaseException):
  return types.SimpleNamespace(exc_type=type(error), exc_value=error, exc_traceback=error.__traceback__,
                               err_msg=None, object=None)


def test_only_late_callbacks_into_a_closed_event_loop_are_dropped():
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as e:
    late = e
  assert orbax_noise.is_closed_loop_noise(_unraisable(late))
  try:
    raise RuntimeError("Event loop is closed")        # the same words from anywhere else are kept
  except RuntimeError as e:
    assert not orbax_noise.is_closed_loop_noise(_unraisable(e))
  assert not orbax_noise.is_closed_loop_noise(_unraisable(ValueError("Event loop is closed")))


def test_the_installed_hook_passes_other_unraisables_on(monkeypatch):
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  orbax_noise.install()
  loop = asyncio.new_event_loop()
  loop.close()
  try:
    loop.call_soon_threadsafe(print)
  except RuntimeError as e:
    sys.unraisablehook(_unraisable(e))
  other = _unraisable(OSError("a real problem"))
  sys.unraisablehook(other)
  assert seen == [other]


def _record(pathname: str, level: int, exc_info=None) -> logging.LogRecord:
  return logging.LogRecord("absl", level, pathname, 1, "Save Finalize thread failed.", (), exc_info)


def test_orbax_error_records_with_tracebacks_are_dropped_unless_its_log_was_asked_for(monkeypatch):
  quiet = orbax_noise._QuietReportedWriteErrors()
  failure = (ValueError, ValueError("RESOURCE_EXHAUSTED"), None)
  orbax_file = "/venv/lib/python3.11/site-packages/orbax/checkpoint/checkpoint_manager.py"
  monkeypatch.setattr(logging.getLogger("absl"), "level", logging.WARNING)
  assert not quiet.filter(_record(orbax_file, logging.ERROR, failure))
  assert quiet.filter(_record(orbax_file, logging.ERROR))                     # no traceback: kept
  assert quiet.filter(_record(orbax_file, logging.WARNING, failure))
  assert quiet.filter(_record("/venv/lib/python3.11/site-packages/jax/x.py", logging.ERROR, failure))
  monkeypatch.setattr(logging.getLogger("absl"), "level", logging.INFO)       # --verbosity=0
  assert quiet.filter(_record(orbax_file, logging.ERROR, failure))
  assert not orbax_noise._QuietMissingMetadata().filter(
      logging.LogRecord("absl", logging.WARNING, orbax_file, 1, "Metadata file does not exist: x", (), None))


_ORBAX_WRITE = compile("async def write_fragment():\n  raise ValueError('OUT_OF_RANGE: Error writing x')\n",
                       "/venv/lib/python3.11/site-packages/orbax/checkpoint/_src/serialization/serialization.py",
                       "exec")


def _unretrieved_records(caplog, make_failures) -> list[str]:
  """What asyncio's logger lets through for tasks and futures that failed and were never awaited."""
  orbax_noise.install()
  loop = asyncio.new_event_loop()
  caplog.clear()
  with caplog.at_level(logging.ERROR, logger="asyncio"):
    failures = loop.run_until_complete(make_failures())
    loop.run_until_complete(asyncio.sleep(0.01))
    del failures
    gc.collect()
  loop.close()
  return [record.getMessage().splitlines()[0] + ": " + str(record.exc_info[1]) for record in caplog.records]


def test_unretrieved_orbax_and_tensorstore_failures_are_dropped_and_others_kept(caplog, monkeypatch):
  monkeypatch.setattr(logging.getLogger("absl"), "level", logging.WARNING)
  namespace = {}
  exec(_ORBAX_WRITE, namespace)

  async def elsewhere():
    raise ValueError("OUT_OF_RANGE: raised by a user's own coroutine")

  async def failures():
    loop = asyncio.get_running_loop()
    orbax_task, other_task = loop.create_task(namespace["write_fragment"]()), loop.create_task(elsewhere())
    tensorstore_future, other_future = loop.create_future(), loop.create_future()
    tensorstore_future.set_exception(ValueError("OUT_OF_RANGE: Error writing y in OCDBT database"))
    other_future.set_exception(ValueError("a real problem"))
    orbax_gather = asyncio.gather(namespace["write_fragment"]())
    return [orbax_task, other_task, tensorstore_future, other_future, orbax_gather]

  kept = _unretrieved_records(caplog, failures)
  assert sorted(kept) == ["Future exception was never retrieved: a real problem",
                          "Task exception was never retrieved: OUT_OF_RANGE: raised by a user's own coroutine"]
  monkeypatch.setattr(logging.getLogger("absl"), "level", logging.INFO)       # --verbosity=0 shows them all
  assert len(_unretrieved_records(caplog, failures)) == 5
