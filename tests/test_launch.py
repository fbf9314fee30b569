"""launch/tpu_pod.sh hands every worker exactly the command line it was given.

No TPU pod here: a stand-in `gcloud` records its arguments and runs the remote command with bash, as the
workers' shells would, and a stand-in `python3` prints the arguments it received. (launch/local.sh and
launch/slurm.sbatch run real multi-process jobs in tests/test_multihost.py.)
"""

import json
import os
import subprocess
import sys

import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GCLOUD = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$GCLOUD_ARGS"
while [ $# -gt 0 ]; do [ "$1" == --command ] && command=$2; shift; done
cd "$HOME" && bash -c "$command"
"""


def _stand_ins(tmp_path):
  python3 = (f"#!/bin/sh\nexec \"{sys.executable}\" -c 'import json, os, sys; "
             f"print(json.dumps([os.getcwd()] + sys.argv[1:]))' \"$@\"\n")
  path = helpers.stand_in_commands(tmp_path / "bin", {"gcloud": GCLOUD, "python3": python3})
  home = tmp_path / "home"
  (home / "jaxssl").mkdir(parents=True)                  # REPO_DIR's default, checked out on each worker
  return dict(os.environ, PATH=path, HOME=str(home),
              GCLOUD_ARGS=str(tmp_path / "gcloud_args"), TPU_NAME="my-pod", ZONE="us-central2-b",
              PROJECT="my-project")


def test_tpu_pod_sends_every_worker_the_same_arguments_quoted(tmp_path):
  env = _stand_ins(tmp_path)
  args = ["--config", "configs/simclr.py", "--workdir", "gs://bucket/runs/a run", "--config.data.mean=(0.5, 0.5)",
          "--config.method.proj_hidden_dims=(2048,)", "--config.data.dataset=it's"]
  result = subprocess.run(["bash", os.path.join(ROOT, "launch", "tpu_pod.sh"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr
  gcloud = (tmp_path / "gcloud_args").read_text().splitlines()
  assert gcloud[:8] == ["compute", "tpus", "tpu-vm", "ssh", "my-pod", "--zone=us-central2-b",
                        "--project=my-project", "--worker=all"]
  cwd, *argv = json.loads(result.stdout)
  assert cwd == str(tmp_path / "home" / "jaxssl")
  assert argv == ["-m", "jaxssl.main", "--distributed", *args]


def test_tpu_pod_names_a_missing_variable(tmp_path):
  env = _stand_ins(tmp_path)
  del env["ZONE"]
  result = subprocess.run(["bash", os.path.join(ROOT, "launch", "tpu_pod.sh"), "--workdir", "x"], env=env,
                          capture_output=True, text=True, timeout=60)
  assert result.returncode != 0 and "ZONE" in result.stderr
  assert not (tmp_path / "gcloud_args").exists()
