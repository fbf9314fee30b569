"""XLA:CPU settings jaxssl's entry points apply before JAX starts its backend.

XLA:CPU (jax 0.10) hands single convolutions to YNNPACK by default. For the ResNets here Eigen's convolution
is faster on the CPU, forward and in jaxssl.models.conv's backward pass (small ResNet at batch 512 on a 2-core
x86_64 CPU: 0.52 s against 0.68 s per forward+backward; benchmarks/throughput.py). The flag only concerns the
CPU backend. XLA reads XLA_FLAGS once, when the first backend starts, so this must run before any computation;
a user who sets the option in XLA_FLAGS keeps theirs.
"""

import os

_OPTION = "--xla_cpu_experimental_ynn_fusion_type"
CPU_FLAGS = f"{_OPTION}=-LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"


def use_eigen_convolutions_on_cpu() -> None:
  """Adds CPU_FLAGS to XLA_FLAGS unless the option is already there."""
  flags = os.environ.get("XLA_FLAGS", "")
  if _OPTION not in flags:
    os.environ["XLA_FLAGS"] = f"{flags} {CPU_FLAGS}".strip()
