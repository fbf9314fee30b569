"""Eight CPU devices for every test and cheap compilation (set before jax is imported: xla_test_flags.py), and
one XLA compilation cache for the session, shared with the `python -m jaxssl.main` subprocesses that the slow
tests start: their identical programs (the same tiny config run 1, 2 or 4 times) then compile once."""
import atexit
import os
import shutil
import tempfile

from xla_test_flags import cpu_flags

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + cpu_flags(8)).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _cache = tempfile.mkdtemp(prefix="jaxssl-tests-xla-cache-")     # fresh each session: nothing carried over
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
  atexit.register(shutil.rmtree, _cache, ignore_errors=True)
# Every program, however quick to compile: a subprocess otherwise compiles again the hundred small ones (the
# orbax save's slices, the evaluation's ops) that the processes before it compiled in under jax's default 1 s.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
