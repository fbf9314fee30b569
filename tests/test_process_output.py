"""A multi-process run prints each line once: process 0 everything but Gloo's C++ lines, the others only their
warnings (jaxssl.common.process_output). Checked in child processes, since the filter rewires file descriptor 1."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHILD = """
import os, sys
from jaxssl.common import process_output
process_output.filter_stdout({index}, {count})
print("step 1: loss 3.2", flush=True)
os.write(1, b"[Gloo] Rank {index} is connected to 1 peer ranks. Expected number of connected peer ranks is : 1\\n")
print("warning: cannot read image 'a.jpg'")
sys.stdout.write("final: kNN 80.00%")           # no newline: still forwarded at exit
print("error: on stderr, from every process", file=sys.stderr)
"""


def _run(index: int, count: int, **env) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-c", CHILD.format(index=index, count=count)], cwd=ROOT,
                        env=dict(os.environ, **env), capture_output=True, text=True, timeout=60)


def test_process_zero_prints_all_but_gloo():
  result = _run(0, 2)
  assert result.returncode == 0, result.stderr
  assert result.stdout == "step 1: loss 3.2\nwarning: cannot read image 'a.jpg'\nfinal: kNN 80.00%"
  assert result.stderr == "error: on stderr, from every process\n"


def test_other_processes_print_only_their_warnings():
  result = _run(1, 2)
  assert result.stdout == "process 1: warning: cannot read image 'a.jpg'\n"
  assert result.stderr == "error: on stderr, from every process\n"


@pytest.mark.parametrize("index,count,env", [(0, 1, {}), (1, 2, {"JAXSSL_ALL_PROCESSES_PRINT": "1"})])
def test_one_process_or_the_switch_leaves_output_alone(index, count, env):
  result = _run(index, count, **env)
  assert result.stdout.startswith("step 1: loss 3.2\n[Gloo] Rank")
  assert result.stdout.endswith("final: kNN 80.00%")
