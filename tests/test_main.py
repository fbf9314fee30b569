"""The command line: a short real run, and one-line errors with exit code 2 for bad values."""

import json
import os
import re
import subprocess
import sys

import pytest

from xla_test_flags import cpu_flags

pytestmark = pytest.mark.slow             # subprocesses and whole runs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--config.data.source=synthetic", "--config.data.synthetic_size=16", "--config.augment.size=16",
        "--config.train.batch_size=16", "--config.method.proj_hidden_dims=(32,)", "--config.method.proj_dim=16"]


def _main(workdir, *args):
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "jaxssl.main", f"--workdir={workdir}", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_short_run_prints_knn_accuracy_and_writes_results(tmp_path):
  # 32 steps per epoch: an evaluation every 3 steps, at step 3; the one at step 6, one step before the end, is
  # left to the final evaluation at step 7.
  result = _main(tmp_path, "--config=configs/vicreg.py", *TINY, "--config.train.num_steps=7",
                 "--config.eval.batch_size=64", "--config.eval.every_epochs=0.09375")
  assert result.returncode == 0, result.stderr[-2000:]
  assert "kNN accuracy of the encoder at random initialisation" in result.stdout
  assert "kNN accuracy (vicreg, 7 steps)" in result.stdout
  saved = json.loads((tmp_path / "results.json").read_text())
  assert [e["step"] for e in saved["evals"]] == [3, 7]
  assert 0.0 <= saved["results"]["knn_accuracy"] <= 1.0
  assert 0.0 <= saved["results"]["online_probe_accuracy"] <= 1.0
  assert len(saved["history"]) >= 1

  # The encoder, read back for use in other JAX code.
  import jax.numpy as jnp
  import jaxssl
  module, variables = jaxssl.load_encoder(str(tmp_path))
  assert module.apply(variables, jnp.zeros((3, 16, 16, 1)), train=False).shape == (3, 128)

  # Its pictures, and its metrics file.
  from jaxssl import plot
  assert plot.main([f"--workdir={tmp_path}", "--points=60"]) == 0
  for name in ("curves.png", "views.png", "embedding.png"):
    assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert {r["kind"] for r in records} == {"train", "eval"}
  # Speed: images/s, the step's seconds apart, XLA's FLOPs; no MFU on the CPU, whose peak is unknown.
  train = [r for r in records if r["kind"] == "train"]
  for name in ("images_per_s", "step_s", "data_s", "compute_s", "tflops_per_device"):
    assert all(r[name] > 0 or (name == "data_s" and r[name] >= 0) for r in train), name
  assert not any("mfu" in r for r in train)
  assert "no MFU: the peak of 'cpu' is unknown" in result.stdout

  # The offline evaluation of the saved run.
  evaluated = _evaluate(tmp_path, "--linear_epochs=2")
  assert evaluated.returncode == 0, evaluated.stderr[-2000:]
  assert "vicreg at step 7: kNN" in evaluated.stdout and "linear top-1" in evaluated.stdout
  scores = json.loads((tmp_path / "eval.json").read_text())
  assert abs(scores["knn_accuracy"] - saved["results"]["knn_accuracy"]) < 1e-6
  assert 0.0 <= scores["linear_top1"] <= scores["linear_top5"] <= 1.0


def _evaluate(workdir, *args):
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "jaxssl.evaluate", f"--workdir={workdir}", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)


def test_unprepared_tfds_data_and_unlabeled_evaluation_say_what_to_do(tmp_path):
  result = _main(tmp_path / "run", "--config=configs/simclr.py", f"--config.data.data_dir={tmp_path / 'tfds'}")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "run `python -m jaxssl.data.prepare fashion_mnist" in errors[0]
  import numpy as np
  np.savez(tmp_path / "unlabeled.npz", train_images=np.zeros((64, 16, 16, 1), np.uint8))
  result = _main(tmp_path / "run", "--config=configs/simclr.py", *TINY, "--config.data.source=numpy",
                 f"--config.data.data_dir={tmp_path / 'unlabeled.npz'}", "--config.data.test_split=")
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert result.returncode == 2 and len(errors) == 1 and "asks for evaluation" in errors[0], result.stderr[-2000:]
  assert not (tmp_path / "run").exists()


def test_evaluate_without_a_run_gives_one_line_error(tmp_path):
  result = _evaluate(tmp_path / "nothing")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "has no config.json" in errors[0]


@pytest.mark.parametrize("override,field", [
    ("--config.method.name=nosuchmethod", "config.method.name='nosuchmethod'"),
    ("--config.train.batch_size=12", "config.train.batch_size=12"),
    ("--config.optim.base_lr=0.0", "config.optim.base_lr=0.0"),
    ("--config.optim.base_lr=-1.0", "config.optim.base_lr=-1.0"),
    ("--config.data.data_dir=/no/such/dir", "config.data.data_dir='/no/such/dir'"),
    ("--config.data.dataset=no_such_dataset", "config.data.dataset='no_such_dataset' is not a TFDS dataset"),
    ("--config.data.source=hdf5", "config.data.source='hdf5'"),
    ("--config.train.checkpoint_every=-1", "config.train.checkpoint_every=-1"),
    ("--config.eval.evaluators=('knn','nosuch')", "config.eval.evaluators=('knn', 'nosuch'): unknown evaluator"),
])
def test_bad_config_value_gives_one_line_error_and_exit_2(tmp_path, override, field):
  keep = tmp_path / "precious.txt"
  keep.write_text("earlier results")
  result = _main(tmp_path, "--config=configs/simclr.py", override)
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and field in errors[0], result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert keep.read_text() == "earlier results" and sorted(os.listdir(tmp_path)) == ["precious.txt"]


@pytest.mark.parametrize("args,culprit", [
    (["--config=configs/simclr.py", "--config.nosuch=1"], "--config.nosuch=1"),
    (["--config=configs/simclr.py", "--config.train.batch_size=abc"],
     "--config.train.batch_size=abc: invalid literal for int() with base 10: 'abc'"),
    (["--config=configs/dino.py", "--config.method.center_momentun=0.9"],
     "--config.method.center_momentun=0.9: no such config field 'center_momentun'; did you mean 'center_momentum'?"),
    (["--config=configs/mae.py", "--config.model.stem=cifar"],
     "--config.model.stem=cifar: only ResNets read it; model.encoder='vit_micro'"),
    (["--config=configs/nosuch.py"], "configs/nosuch.py"),
    ([], "--config"),
    (["--config=configs/simclr.py", "--config.train.num_epoch=3"],
     "--config.train.num_epoch=3: no such config field 'num_epoch'; did you mean 'num_epochs'?"),
])
def test_bad_command_line_gives_one_line_error_and_exit_2(tmp_path, args, culprit):
  result = _main(tmp_path / "run", *args)
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and culprit in errors[0], result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "run").exists()


def test_dry_run_builds_compiles_and_reports_without_a_workdir(tmp_path):
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  run = lambda *args: subprocess.run([sys.executable, "-m", "jaxssl.main", f"--config={ROOT}/configs/simclr.py",  # noqa: E731
                                      *TINY, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                                     timeout=600)
  result = run("--config.train.num_steps=30", "--config.optim.warmup_steps=40", "--dry_run")
  assert result.returncode == 0, result.stderr[-2000:]
  out = result.stdout
  assert "dry run: simclr with small_resnet, nothing written" in out
  assert re.search(r"parameters: [\d,]+ \([\d,]+ in the encoder\)", out), out
  assert re.search(r"step: [\d.e+-]+ GFLOP per image \(XLA's count\), [\d.e+-]+ GiB per device, compiled in", out)
  # The warm-up is fitted to the run as the run would fit it: 40 steps asked of 30 -> 15.
  assert "length: 30 steps of 16 (" in out and "schedules in steps: optim warm-up 15" in out
  assert os.listdir(tmp_path) == []
  bad = run("--config.data.synthetic_channels=2", "--dry_run")
  assert bad.returncode == 2 and bad.stderr.strip().startswith("error: config.data.synthetic_channels=2")
  assert os.listdir(tmp_path) == []


def test_help_exits_0(tmp_path):
  result = _main(tmp_path / "run", "--help")
  assert result.returncode == 0 and "--workdir" in result.stdout and "--allow_change" in result.stdout
  assert "(default: 'None')" not in result.stdout and "--config: Path to a config file" in result.stdout
  assert "--dry_run:" in result.stdout and "(required, except with --print_config and --dry_run)" in result.stdout
  for module, expected in (("jaxssl.finetune", ["--config:", "--workdir:", "--allow_change:", "--pretrained:",
                                                "--from: <pretrained|scratch>"]),
                           ("jaxssl.data.generate", ["usage: python -m jaxssl.data.generate", "training images (default: 3000)"])):
    shown = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
    assert shown.returncode == 0 and all(e in shown.stdout for e in expected), (module, shown.stdout[-2000:])
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("source,message", [
    ("def get_config(:\n", "syntax error at line 1: invalid syntax"),
    ("def get_config():\n  raise RuntimeError('boom')\n", "get_config raised RuntimeError: boom"),
    ("import nosuchmodule\ndef get_config():\n  pass\n", "loading it raised ModuleNotFoundError"),
    ("def get_config():\n  return {'a': 1}\n", "get_config() returned a dict, not an ml_collections.ConfigDict"),
    ("def get_config():\n  return [1, 2]\n", "get_config() returned a list, not an ml_collections.ConfigDict"),
    ("def get_config():\n  return None\n", "get_config() returned None (a missing return?)"),
    ("def get_config():\n  return {}['lr']\n", "get_config raised KeyError: lr"),
    ("from jaxssl import defaults\ndef get_config():\n  return defaults.get_config('nosuch')\n",
     "get_config raised KeyError: unknown method 'nosuch'; known: ["),
    ("import sys\nsys.exit(0)\n", "loading it raised SystemExit: 0"),
    ("get_config = 3\n", "defines no get_config()"),
    ("", "defines no get_config()"),
])
def test_a_broken_config_file_gives_one_line_and_exit_2(tmp_path, source, message):
  path = tmp_path / "config.py"
  path.write_text(source)
  result = _main(tmp_path / "run", f"--config={path}")
  assert result.returncode == 2, result.stderr[-2000:]
  assert result.stderr.strip().splitlines() == [f"error: --config={path}: {message}"] or (
      len(result.stderr.strip().splitlines()) == 1 and message in result.stderr), result.stderr[-2000:]
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("source", [
    "from jaxssl import defaults\nif True:\n  def get_config():\n    return defaults.get_config('simclr')\n",
    "from configs.simclr import get_config\n",
    "import functools\nfrom jaxssl import defaults\nget_config = functools.partial(defaults.get_config, 'simclr')\n",
])
def test_a_config_file_that_binds_get_config_otherwise_is_read(tmp_path, source):
  path = tmp_path / "config.py"
  path.write_text(source)
  # The run gets as far as validating the config's values: the file itself was accepted.
  result = _main(tmp_path / "run", f"--config={path}", "--config.train.batch_size=12")
  assert result.returncode == 2 and result.stderr.strip().splitlines() == [
      "error: config.train.batch_size=12: must be divisible by the number of devices (8)"], result.stderr[-2000:]


@pytest.mark.parametrize("args,error", [
    (["--config.method.proj_hidden_dims=(32,)", "--config.method.proj_hidden_dims=(0,)"],
     "error: config.method.proj_hidden_dims=(0,): "),                           # absl joined them: (32, 0)
    (["--config.augment.crop_scale=(0.08,1.0)", "--config.augment.crop_scale", "(0.5,0.2)"],
     "error: config.augment.crop_scale=(0.5, 0.2): "),
    (["--config.train.batch_size=16", "--config.train.batch_size", "12", "--config.optim.base_lr=0.5"],
     "error: config.train.batch_size=12: "),
])
def test_a_config_field_given_twice_takes_its_last_value(tmp_path, args, error):
  result = _main(tmp_path / "run", "--config=configs/simclr.py", *args)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith(error), result.stderr[-2000:]
  assert not (tmp_path / "run").exists()


def test_last_overrides_keeps_each_fields_last_value_and_the_rest_in_order():
  from jaxssl.main import last_overrides
  argv = ["main", "--config=c.py", "--config.a=(32,)", "--workdir", "w", "--config.a", "()", "--config.b=1",
          "--config.c", "x", "--config.b=2", "--distributed"]
  assert last_overrides(argv) == ["main", "--config=c.py", "--workdir", "w", "--config.a", "()", "--config.c", "x",
                                  "--config.b=2", "--distributed"]


def test_a_bad_config_argument_gives_one_line(tmp_path):
  result = _main(tmp_path / "run", "--config=configs/simclr_imagenet.py:nosuch")
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      "error: --config=configs/simclr_imagenet.py:nosuch: get_config raised ValueError: config argument "
      "'nosuch': use one of imagenet2012, imagenette, folder"], result.stderr[-2000:]


FILE_SIZE_LIMIT = """
import resource, runpy, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 18, 1 << 18))
sys.argv = ["jaxssl.main"] + sys.argv[1:]
runpy.run_module("jaxssl.main", run_name="__main__")
"""


def test_a_disk_that_refuses_the_checkpoint_is_one_line_without_library_tracebacks(tmp_path):
  """Files may not grow past 256 KiB (RLIMIT_FSIZE, what a nearly full disk does to the checkpoint's array
  file): orbax's error records and TensorStore's ~300 "Event loop is closed" tracebacks stay out of the output."""
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("JAX_COMPILATION_CACHE_DIR", None)           # its entries would hit the limit too
  result = subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT, f"--workdir={tmp_path}", "--config=configs/byol.py",
                           *TINY, "--config.train.num_steps=2", "--config.eval.knn_at_init=False"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr, result.stderr[-2000:]
  error = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(error) == 1 and f"a checkpoint could not be written to {tmp_path}/checkpoints: File too large (" in (
      error[0]), result.stderr[-2000:]
  assert not (tmp_path / "checkpoints" / "2").exists()


def test_print_config_lists_every_field_with_its_meaning_checks_it_and_writes_nothing(tmp_path):
  env = dict(os.environ, XLA_FLAGS=cpu_flags(8), JAX_PLATFORMS="cpu")
  run = lambda *args: subprocess.run([sys.executable, "-m", "jaxssl.main", f"--config={ROOT}/configs/mae.py", *args],
                                     cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
  result = run("--config.train.num_steps=30", "--config.eval.evaluators=knn,linear_probe", "--print_config")
  assert result.returncode == 0, result.stderr[-2000:]
  lines = result.stdout.splitlines()
  assert any(line.startswith("train.num_steps") and " 30 " in line for line in lines)
  assert any(line.startswith("eval.evaluators") and " ('knn', 'linear_probe') " in line for line in lines)  # a,b: a tuple
  assert any(line.startswith("method.mask_ratio") and "jaxssl.methods.mae.defaults()" in line for line in lines)
  assert any(line.startswith("optim.base_lr") and "# peak lr = base_lr * batch_size / 256" in line for line in lines)
  assert lines[-1] == "# valid on 8 cpu device(s)" and os.listdir(tmp_path) == []
  # Only the chosen encoder's fields: a ViT run shows no ResNet stem, and refuses one set even to its default.
  assert not any(line.startswith(("model.stem", "model.zero_init_residual")) for line in lines)
  assert any(line.startswith("model.patch_size") for line in lines)
  stem = run("--config.model.stem=cifar", "--print_config")
  assert stem.returncode == 2 and stem.stderr.strip() == ("error: --config.model.stem=cifar: only ResNets read it; "
                                                         "model.encoder='vit_micro'")
  bad = run("--config.optim.base_lr=-1.0", "--print_config")
  assert bad.returncode == 2 and bad.stderr.strip() == "error: config.optim.base_lr=-1.0: must be positive"
  writer = run("--config.metrics.writers=tensorboard,mlflow", "--print_config")
  assert writer.returncode == 2 and writer.stderr.strip() == (
      "error: config.metrics.writers=('tensorboard', 'mlflow'): unknown writer 'mlflow'; use 'tensorboard' or 'wandb'")
  missing = run()
  assert missing.returncode == 2 and missing.stderr.strip().startswith("error: --workdir: required")
  assert os.listdir(tmp_path) == []
