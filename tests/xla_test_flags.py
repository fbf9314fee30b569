"""The XLA flags of the test processes and of the subprocesses they start (no jax import here: conftest sets
them before jax loads).

Compiling is most of the suite's time on a small CPU. The tests compare runs with each other (8 devices with 1,
a resumed run with an uninterrupted one, 2 processes with 1) and with references within tolerances, and never
time anything, so XLA's cheapest backend optimisation serves them: it compiles the tiny steps 20-40% faster.
Its slower code does not eat that up: on 2026-12-04 (2 cores) four of the longest tests, two in this process
and two that start subprocesses, took 57 s and 72 s with these flags against 76 s and 97 s with XLA's defaults.
Both sides of every comparison compile with the same flags. ``python -m jaxssl.main`` outside the tests keeps
XLA's defaults.
"""

FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"


def cpu_flags(devices: int) -> str:
  """XLA_FLAGS for a test subprocess with ``devices`` CPU devices."""
  return f"{FAST_COMPILE} --xla_force_host_platform_device_count={devices}"
