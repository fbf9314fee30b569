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


def with_eigen_convolutions(flags: str) -> str:
  """``flags`` (an XLA_FLAGS value) with CPU_FLAGS added, unless the option is already there."""
  return flags if _OPTION in flags else f"{flags} {CPU_FLAGS}".strip()


def use_eigen_convolutions_on_cpu() -> None:
  """Sets XLA_FLAGS of this process to ``with_eigen_convolutions`` of its current value."""
  os.environ["XLA_FLAGS"] = with_eigen_convolutions(os.environ.get("XLA_FLAGS", ""))
