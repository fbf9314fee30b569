"""Two processes x 2 CPU devices (jax.distributed over loopback) == one process x 4 devices; a preemption
(SIGTERM to one process) stops both at the same step with one joint checkpoint, and launch/local.sh resumes
them to the same end, bit for bit, as the uninterrupted run. That uninterrupted run goes through
launch/slurm.sbatch, with a stand-in for srun that starts the tasks on this machine with SLURM's variables, so
jax.distributed finds the cluster as it does under SLURM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import helpers
from jaxssl.runs import restore
from xla_test_flags import FAST_COMPILE, cpu_flags

pytestmark = pytest.mark.slow             # subprocesses and whole runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 16
ARGS = ["--config=configs/byol.py", "--config.data.source=synthetic", "--config.data.synthetic_size=16",
        "--config.augment.size=16", "--config.train.batch_size=16", "--config.method.proj_hidden_dims=(32,)",
        "--config.method.proj_dim=16", "--config.method.pred_hidden_dims=(32,)", f"--config.train.num_steps={STEPS}",
        "--config.train.log_every=1", "--config.train.checkpoint_every=0", "--config.eval.knn_at_init=False",
        "--config.eval.batch_size=64"]


# The two-process runs with their state sharded, small arrays too (the tiny BYOL's are below the default size).
FSDP = ["--config.parallel.fsdp=True", "--config.parallel.fsdp_min_size=256"]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _history(workdir):
  saved = json.loads((workdir / "results.json").read_text())
  return [h["loss"] for h in saved["history"]], saved["results"]


def _preempt_two_processes(workdir, logs, after_step, extra=()):
  """Starts both processes as launch/local.sh does, sends SIGTERM to process 0 alone once it has logged
  ``after_step``, and returns both exit codes."""
  # Every process prints (JAXSSL_ALL_PROCESSES_PRINT), so that process 1's log shows what it did.
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAXSSL_COORDINATOR=f"127.0.0.1:{_free_port()}",
             JAXSSL_NUM_PROCESSES="2", XLA_FLAGS=cpu_flags(2),
             JAXSSL_ALL_PROCESSES_PRINT="1")
  processes = []
  for i, log in enumerate(logs):
    with open(log, "w") as out:
      processes.append(subprocess.Popen(
          [sys.executable, "-m", "jaxssl.main", "--distributed", f"--workdir={workdir}", *ARGS, *extra], cwd=ROOT,
          env=dict(env, JAXSSL_PROCESS_ID=str(i)), stdout=out, stderr=subprocess.STDOUT))
  deadline = time.time() + 600
  while f" {after_step}/{STEPS} " not in logs[0].read_text() and time.time() < deadline:
    assert all(p.poll() is None for p in processes), logs[0].read_text()[-3000:]
    time.sleep(0.05)
  processes[0].send_signal(signal.SIGTERM)
  return [p.wait(timeout=600) for p in processes]


def _local_sh(workdir, *extra, devices_per_process=2):
  env = dict(os.environ, JAX_PLATFORMS="cpu", PORT=str(_free_port()), DEVICES_PER_PROCESS=str(devices_per_process))
  env["XLA_FLAGS"] = FAST_COMPILE                # local.sh adds the device count
  result = subprocess.run(["bash", "launch/local.sh", "2", f"--workdir={workdir}", *ARGS, *extra], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout + result.stderr


SRUN = """#!/usr/bin/env bash
# srun on one machine: SLURM_NTASKS copies of the command, each with the variables srun gives a task.
[[ "$1" == --kill-on-bad-exit=1 ]] && shift
pids=()
for ((i = 0; i < SLURM_NTASKS; i++)); do
  SLURM_PROCID=$i SLURM_LOCALID=$i SLURM_STEP_NODELIST=localhost SLURM_STEP_NUM_NODES=1 "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=$?; done
exit $status
"""


def _slurm_job_id():
  """A job id whose coordinator port (jax's SlurmCluster: 61440 + job id mod 4096) is free here."""
  for port in range(61440, 65536):
    with socket.socket() as s:
      try:
        s.bind(("127.0.0.1", port))
      except OSError:
        continue
    return port - 61440 + 4096
  raise RuntimeError("no free port for the SLURM coordinator")


def _slurm_sbatch(workdir, bin_dir, *extra):
  """launch/slurm.sbatch as SLURM would run it for a 2-task job on one node (srun and python3 stand-ins)."""
  path = helpers.stand_in_commands(bin_dir, {"srun": SRUN,
                                             "python3": f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'})
  env = dict(os.environ, PATH=path, SLURM_SUBMIT_DIR=ROOT,
             SLURM_JOB_ID=str(_slurm_job_id()), SLURM_NTASKS="2", JAX_PLATFORMS="cpu",
             XLA_FLAGS=cpu_flags(2))
  result = subprocess.run(["bash", os.path.join(ROOT, "launch", "slurm.sbatch"), f"--workdir={workdir}", *ARGS, *extra],
                          cwd="/", env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout + result.stderr


def test_two_processes_match_one_and_resume_bit_identically_after_a_preemption(tmp_path):
  """The two-process runs shard their state (parallel.fsdp; the one-process reference is replicated), so their
  checkpoints are written by both processes, each its shards, and read back here onto one device."""
  env_one = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=cpu_flags(4))
  one = subprocess.run([sys.executable, "-m", "jaxssl.main", f"--workdir={tmp_path / 'one'}", *ARGS], cwd=ROOT,
                       env=env_one, capture_output=True, text=True, timeout=900)
  assert one.returncode == 0, one.stderr[-3000:]
  output = _slurm_sbatch(tmp_path / "two", tmp_path / "bin", *FSDP)
  assert "devices: 4 cpu in 2 process(es), 2 in process 0" in output, output[-3000:]
  # One console (jaxssl.common.process_output): process 0's lines once, none of Gloo's, nothing of process 1's.
  assert output.count("final: ") == 1 and "[Gloo]" not in output and "in process 1" not in output, output[-3000:]
  losses_one, results_one = _history(tmp_path / "one")
  losses_two, results_two = _history(tmp_path / "two")
  assert len(losses_one) == len(losses_two) == STEPS
  # The same global batches and updates; gloo's and the in-process all-reduce sum in different orders, and
  # those last-bit differences grow over training, so only the first steps are compared this tightly.
  np.testing.assert_allclose(losses_two[:5], losses_one[:5], rtol=1e-5, atol=1e-6)
  assert os.listdir(tmp_path / "two" / "checkpoints") == [str(STEPS)]       # one checkpoint, written jointly
  # ... by both processes: each wrote its own shards (orbax's per-process OCDBT files).
  written = os.listdir(tmp_path / "two" / "checkpoints" / str(STEPS) / "state")
  assert {"ocdbt.process_0", "ocdbt.process_1"} <= set(written), written

  preempted, logs = tmp_path / "preempted", [tmp_path / "process0.log", tmp_path / "process1.log"]
  assert _preempt_two_processes(preempted, logs, after_step=3, extra=FSDP) == [0, 0], logs[1].read_text()[-3000:]
  stopped = os.listdir(preempted / "checkpoints")
  assert len(stopped) == 1 and 3 <= int(stopped[0]) < STEPS, stopped
  for log in logs:       # the process without the signal learns of it through JAX's preemption service
    assert f"SIGTERM: saved a checkpoint at step {stopped[0]}" in log.read_text()
  assert f"resuming from step {stopped[0]}" in _local_sh(preempted, *FSDP)
  losses_resumed, results_resumed = _history(preempted)
  assert losses_resumed == losses_two
  assert results_resumed["knn_accuracy"] == results_two["knn_accuracy"]
  assert sorted(os.listdir(preempted / "checkpoints"), key=int) == [stopped[0], str(STEPS)]
  # Two processes' sharded checkpoints onto this process's one device (their checksums checked on the way):
  # the resumed run ends in the same state as the uninterrupted one.
  ended, resumed = restore.load_run(str(tmp_path / "two")), restore.load_run(str(preempted))
  assert ended.meta["data_position"] == resumed.meta["data_position"]
  for a, b in zip(jax.tree.leaves(ended.state), jax.tree.leaves(resumed.state)):
    assert len(a.devices()) == 1
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_two_processes_of_four_devices_match_one_of_eight_with_host_crops(tmp_path):
  """The parallel host path (JPEGs cropped from the full image, two worker threads per process): each process
  crops only its half of every global batch, and the run equals the one-process run."""
  from test_resume import jpeg_folder_args

  extra = jpeg_folder_args(tmp_path / "jpegs")
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=cpu_flags(8))
  one = subprocess.run([sys.executable, "-m", "jaxssl.main", f"--workdir={tmp_path / 'one'}", *ARGS, *extra],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert one.returncode == 0, one.stderr[-3000:]
  output = _local_sh(tmp_path / "two", *extra, devices_per_process=4)
  assert "devices: 8 cpu in 2 process(es), 4 in process 0" in output, output[-3000:]
  losses_one, results_one = _history(tmp_path / "one")
  losses_two, _ = _history(tmp_path / "two")
  assert len(losses_one) == len(losses_two) == STEPS
  np.testing.assert_allclose(losses_two[:5], losses_one[:5], rtol=1e-5, atol=1e-6)
  assert 0 <= results_one["knn_accuracy"] <= 1
