"""Fine-tuning (jaxssl/tasks/classifier.py, jaxssl/finetune.py, jaxssl/ops/mixing.py) and the label subset
(jaxssl/data/label_subset.py)."""

import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jaxssl import data, train
from jaxssl.common.config_checks import ConfigError
from jaxssl.engine import train_step
from jaxssl.methods.base import Variables
from jaxssl.ops import mixing
from jaxssl.runs.checkpoint import CheckpointError
from jaxssl.schema import defaults, validate
from test_train import _run_shard_map
from tiny import tiny_config
from xla_test_flags import cpu_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- mixup / cutmix -----------------------------------------------------------------------------------------

def _images_and_targets(n=8, size=12, classes=5, smoothing=0.1):
  images = jax.random.uniform(jax.random.key(1), (n, size, size, 3))
  labels = jnp.arange(n) % classes
  return images, labels, mixing.smoothed_one_hot(labels, classes, smoothing)


def test_smoothed_targets_put_one_minus_smoothing_plus_a_share_on_the_label():
  _, labels, targets = _images_and_targets(smoothing=0.1)
  np.testing.assert_allclose(targets.sum(-1), 1.0, rtol=1e-6)
  assert float(targets[0, 0]) == pytest.approx(0.9 + 0.02) and float(targets[0, 1]) == pytest.approx(0.02)


@pytest.mark.parametrize("mixup_alpha,cutmix_alpha", [(0.8, 1.0), (0.8, 0.0), (0.0, 1.0)])
def test_mixing_keeps_each_examples_label_mass_and_mixes_with_its_neighbour(mixup_alpha, cutmix_alpha):
  images, labels, targets = _images_and_targets()
  keys = jax.random.split(jax.random.key(0), 8)
  mixed, mixed_targets = mixing.mix(keys, images, targets, mixup_alpha, cutmix_alpha)
  np.testing.assert_allclose(mixed_targets.sum(-1), 1.0, rtol=1e-5)
  partner = np.arange(8) ^ 1
  for i in range(8):
    lam = float(mixed_targets[i, labels[i]] - targets[partner[i], labels[i]]) / float(
        targets[i, labels[i]] - targets[partner[i], labels[i]])
    assert 0.0 <= lam <= 1.0 + 1e-5
    expected = lam * targets[i] + (1 - lam) * targets[partner[i]]
    np.testing.assert_allclose(mixed_targets[i], expected, atol=1e-5)
    if cutmix_alpha > 0 and mixup_alpha == 0:      # every pixel is one image's or the other's
      x = np.asarray(mixed[i])
      from_self = np.isclose(x, images[i]).all(-1)
      from_partner = np.isclose(x, images[partner[i]]).all(-1)
      assert np.all(from_self | from_partner)
      # the pasted share is the box's, which is what lambda says
      assert float(from_partner.mean()) == pytest.approx(1 - lam, abs=1e-6)


def _timm_mix_batch(x, target, lam, use_cutmix, box, partner):
  """timm's ``Mixup`` in ``batch`` mode (``_mix_batch`` then ``mixup_target``, correct_lam), written out with the
  draws given (lam from Beta, the choice, and the box ``rand_bbox`` placed) and the partner of each example given
  (timm: the flipped batch)."""
  x, target = np.array(x, np.float64), np.asarray(target, np.float64)
  if use_cutmix:
    yl, yh, xl, xh = box
    x[:, yl:yh, xl:xh] = x[partner][:, yl:yh, xl:xh]
    lam = 1.0 - (yh - yl) * (xh - xl) / float(x.shape[1] * x.shape[2])
  else:
    x = x * lam + x[partner] * (1.0 - lam)
  return x, target * lam + target[partner] * (1.0 - lam)


@pytest.mark.parametrize("mixup_alpha,cutmix_alpha", [(0.8, 1.0), (0.8, 0.0), (0.0, 1.0)])
def test_batch_mode_mixes_every_example_with_one_lambda_and_box_as_timm(mixup_alpha, cutmix_alpha):
  images, labels, targets = _images_and_targets()
  partner = np.asarray(mixing.partners(8))
  kinds = set()
  for seed in range(12):
    key = jax.random.key(seed)
    mixed, mixed_targets = mixing.mix(key, images, targets, mixup_alpha, cutmix_alpha)
    # The draws every example made from the one key (the batch's lambda, choice and box).
    lam = float(mixed_targets[0, labels[0]] - targets[partner[0], labels[0]]) / float(
        targets[0, labels[0]] - targets[partner[0], labels[0]])
    own = np.isclose(np.asarray(mixed[0]), np.asarray(images[0])).all(-1)
    theirs = np.isclose(np.asarray(mixed[0]), np.asarray(images[partner[0]])).all(-1)
    use_cutmix = cutmix_alpha > 0 and bool(np.all(own | theirs))        # mixup blends: neither image's pixels
    rows, cols = np.nonzero(~own)
    box = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) if rows.size else (0, 0, 0, 0)
    kinds.add(use_cutmix)
    want_x, want_t = _timm_mix_batch(images, targets, lam, use_cutmix, box, partner)
    np.testing.assert_allclose(mixed, want_x, atol=1e-5)
    np.testing.assert_allclose(mixed_targets, want_t, atol=1e-5)
  assert kinds == ({True, False} if mixup_alpha and cutmix_alpha else {cutmix_alpha > 0})
  # Per example (elem mode) the lambdas differ.
  _, elem_targets = mixing.mix(jax.random.split(jax.random.key(0), 8), images, targets, mixup_alpha, cutmix_alpha)
  lams = [float(elem_targets[i, labels[i]]) for i in range(8)]
  assert len({round(v, 4) for v in lams}) > 2


def test_the_classifier_draws_one_mixing_per_step_in_batch_mode_and_per_example_in_elem_mode(monkeypatch):
  from jaxssl.methods.base import StepInputs
  images = jnp.asarray(np.random.default_rng(0).normal(size=(8, 16, 16, 1)), jnp.float32)
  labels = jnp.arange(8) % 10
  inputs = StepInputs([images], jax.random.split(jax.random.key(1), 8), labels, jnp.asarray(4, jnp.int32), (), None)
  captured, real_mix = {}, mixing.mix

  def spy(*args):
    captured["targets"] = real_mix(*args)[1]
    return real_mix(*args)

  monkeypatch.setattr(mixing, "mix", spy)
  for mode, lambdas in (("batch", 1), ("elem", 8)):
    config = _classifier_config(mixup_mode=mode, cutmix_alpha=0.0, label_smoothing=0.0, erase_prob=0.0)
    validate.validate(config, num_devices=8)
    trainer = train_step.build(config, total_steps=3, axis_name=None, num_classes=10)
    state = train_step.init_state(trainer, jax.random.key(0), 1)
    trainer.method.loss(trainer.model, Variables(state.params, {}), None, inputs)
    own = np.asarray(captured["targets"])[np.arange(8), np.asarray(labels)]
    assert len({round(float(v), 5) for v in own}) == lambdas, mode
  config = _classifier_config(mixup_mode="pair")
  with pytest.raises(ConfigError, match=r"^config.method.mixup_mode='pair': use one of 'batch', 'elem'"):
    validate.validate(config, num_devices=8)


def test_cutmix_boxes_stay_inside_the_image():
  for seed in range(200):
    key = jax.random.key(seed)
    lam = jax.random.uniform(jax.random.fold_in(key, 1))
    y0, y1, x0, x1 = (int(v) for v in mixing.cutmix_box(key, lam, 14, 10))
    assert 0 <= y0 <= y1 <= 14 and 0 <= x0 <= x1 <= 10


def test_mixing_is_off_with_both_alphas_zero():
  images, _, targets = _images_and_targets()
  out, out_targets = mixing.mix(jax.random.split(jax.random.key(0), 8), images, targets, 0.0, 0.0)
  assert out is images and out_targets is targets


# --- the classifier's step ---------------------------------------------------------------------------------

def _classifier_config(**method):
  config = tiny_config("classifier")
  config.model.encoder, config.model.patch_size = "vit_micro", 4
  config.model.drop_path_rate, config.optim.layer_decay = 0.1, 0.65
  config.optim.name, config.optim.base_lr = "adamw", 5e-4
  for k, v in method.items():
    config.method[k] = v
  return config


@pytest.mark.slow                 # a long in-process run (over 20 s on 2 cores): not in the fast subset
def test_eight_devices_fine_tune_as_one_with_mixup_cutmix_and_drop_path():
  config = _classifier_config()
  pipeline = data.Pipeline(data.synthetic(64, size=16), config.train.batch_size, seed=0, prefetch=0)
  batches = [next(pipeline) for _ in range(2)]
  state8, losses8, _ = _run_shard_map(config, batches, 8, num_classes=10)
  state1, losses1, _ = _run_shard_map(config, batches, 1, num_classes=10)
  np.testing.assert_allclose(losses8, losses1, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(state8.params), jax.tree.leaves(state1.params)):
    np.testing.assert_allclose(a, b, atol=5e-5, rtol=5e-5)


def test_an_odd_share_per_device_is_refused_when_mixing():
  config = _classifier_config()
  config.train.batch_size = 8 * 3 if jax.device_count() == 8 else 3
  with pytest.raises(ConfigError, match="config.train.batch_size=.*must be even"):
    validate.validate(config, num_devices=jax.device_count())


def test_a_dataset_with_another_number_of_classes_is_refused(tmp_path):
  config = tiny_config("classifier")
  config.method.num_classes = 7
  with pytest.raises(data.DataError, match="config.method.num_classes=7: .* the data has 10"):
    train.run(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


# --- from a pretrained run ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A tiny SimCLR run (synthetic 16 px images, the small ResNet), 2 steps."""
  workdir = tmp_path_factory.mktemp("pretrained") / "simclr"
  config = tiny_config("simclr")
  config.train.num_steps, config.eval.at_end, config.eval.knn_at_init = 2, False, False
  train.run(config, str(workdir))
  return workdir


def test_fine_tuning_starts_from_the_pretrained_encoder_and_reports_its_top1(pretrained, tmp_path):
  from jaxssl.runs.restore import load_run

  config = tiny_config("classifier")
  config.method.init, config.method.pretrained = "pretrained", str(pretrained)
  trainer = train_step.build(config, total_steps=2, num_classes=10)
  fresh = train_step.init_state(trainer, jax.random.key(0), 1)
  started = train.warm_start(trainer, fresh, train.start_from(config, 1))
  source = load_run(str(pretrained)).state
  for a, b in zip(jax.tree.leaves(started.params["encoder"]), jax.tree.leaves(source.params["encoder"])):
    np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(started.batch_stats["encoder"]), jax.tree.leaves(source.batch_stats["encoder"])):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(started.params["head"]["kernel"], fresh.params["head"]["kernel"])

  config.train.num_steps = 2
  results = train.run(config, str(tmp_path / "ft"))
  assert 0.0 <= results["top1"] <= results["top5"] <= 1.0 and results["train_examples"] == 512


def test_a_sharded_fine_tuning_run_starts_in_place_from_the_pretrained_encoder(pretrained):
  """parallel.fsdp with a pretrained encoder (train.warm_start_sharded): the state made in place on 8 devices,
  laid out as the run's shardings say, with the values of the warm start made on one device (the pretrained
  encoder and its BatchNorm statistics exactly; the fresh head and the optimizer state to float32 rounding)."""
  from helpers import mesh

  config = tiny_config("classifier")
  config.method.init, config.method.pretrained = "pretrained", str(pretrained)
  config.parallel.fsdp, config.parallel.fsdp_min_size = True, 256
  trainer = train_step.build(config, total_steps=2, num_classes=10)
  m = mesh(8)
  starter = train.start_from(config, 1)                  # the pretrained run's encoder (jaxssl.runs.pretrained_run)
  made = train.warm_start_sharded(config, trainer, train.init_sharded(config, trainer, jax.random.key(0), 1, m), m,
                                  starter)
  expected = train.warm_start(trainer, train_step.init_state(trainer, jax.random.key(0), 1), starter)
  shardings = train.state_shardings(config, expected, m)
  assert jax.tree.structure(made) == jax.tree.structure(expected)
  for a, b, sharding in zip(jax.tree.leaves(made), jax.tree.leaves(expected), jax.tree.leaves(shardings)):
    assert a.sharding == sharding
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=3e-7, atol=1e-9)
  for a, b in zip(jax.tree.leaves(made.params["encoder"]), jax.tree.leaves(expected.params["encoder"])):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert any(not leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(made.params["encoder"]))
  assert any(not leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(made.opt_state))


def test_a_pretrained_run_of_another_encoder_is_refused_before_the_workdir_exists(pretrained, tmp_path):
  config = tiny_config("classifier")
  config.method.init, config.method.pretrained = "pretrained", str(pretrained)
  config.model.encoder = "resnet18"
  with pytest.raises(CheckpointError, match=r"config.method.pretrained=.*do not fit this config's encoder"):
    train.run(config, str(tmp_path / "ft"))
  assert not (tmp_path / "ft").exists()
  config.model.encoder, config.method.pretrained = "small_resnet", str(tmp_path / "nothing")
  with pytest.raises(CheckpointError, match="has no config.json"):
    train.run(config, str(tmp_path / "ft"))
  assert not (tmp_path / "ft").exists()


def test_a_pretrained_vit_fine_tunes_with_global_pooling_and_a_fresh_fc_norm(tmp_path, capsys):
  """MAE's main_finetune.py with global_pool: the pretrained encoder's blocks and embeddings are loaded, its
  final norm left out, fc_norm initialised afresh (the official missing keys: fc_norm, head). The run was
  pretrained with model.scan_layers (stacked blocks) and fine-tunes with the blocks one by one, as layer-wise
  decay needs them."""
  from jaxssl.models.vit import unstack_blocks
  from jaxssl.runs.restore import load_run

  mae = tiny_config("mae")
  mae.train.num_steps, mae.eval.at_end, mae.eval.knn_at_init = 1, False, False
  mae.model.scan_layers = True
  train.run(mae, str(tmp_path / "mae"))
  config = tiny_config("classifier")
  for field in ("encoder", "patch_size", "pos_embed", "weight_init"):
    config.model[field] = mae.model[field]
  config.model.pool = "global"
  config.method.init, config.method.pretrained = "pretrained", str(tmp_path / "mae")
  trainer = train_step.build(config, total_steps=2, num_classes=10)
  fresh = train_step.init_state(trainer, jax.random.key(0), 1)
  started = train.warm_start(trainer, fresh, train.start_from(config, 1)).params["encoder"]
  out = capsys.readouterr().out
  assert "global" in out and "unstacked from model.scan_layers" in out
  saved = load_run(str(tmp_path / "mae")).state.params["encoder"]
  assert "blocks" in saved and "block_0" not in saved
  source = unstack_blocks(jax.tree.map(np.asarray, saved))
  assert set(started) == (set(source) - {"norm"}) | {"fc_norm"}
  for name in set(source) - {"norm"}:
    for a, b in zip(jax.tree.leaves(started[name]), jax.tree.leaves(source[name])):
      np.testing.assert_array_equal(a, b)
  assert not np.array_equal(started["block_0"]["attn"]["qkv"]["kernel"],
                            started["block_1"]["attn"]["qkv"]["kernel"])
  np.testing.assert_array_equal(started["fc_norm"]["scale"], 1.0)
  np.testing.assert_array_equal(started["fc_norm"]["bias"], 0.0)
  assert not np.array_equal(source["norm"]["bias"], 0.0)             # the left-out norm had trained


def test_global_pooling_is_refused_for_pretraining_methods():
  config = tiny_config("mae")
  config.model.pool = "global"
  with pytest.raises(ConfigError, match="config.model.pool='global'.*fine-tuning"):
    validate.validate(config, num_devices=jax.device_count())


# --- the label subset --------------------------------------------------------------------------------------

def test_the_label_subset_is_class_balanced_deterministic_and_layout_free():
  labels = np.random.default_rng(0).integers(0, 10, size=5000)
  subset = data.balanced_indices(labels, 0.1, seed=0)
  counts = np.bincount(labels[subset], minlength=10)
  expected = np.round(0.1 * np.bincount(labels, minlength=10))
  np.testing.assert_array_equal(counts, expected)
  np.testing.assert_array_equal(subset, data.balanced_indices(labels, 0.1, seed=0))
  assert not np.array_equal(subset, data.balanced_indices(labels, 0.1, seed=1))
  assert len(data.balanced_indices(labels, 0.0001)) == 10          # at least one per class
  # Two processes read disjoint halves of each global batch of the same subset: together, one process's.
  source = data.label_subset(data.synthetic(512), 0.1, seed=0)
  one = data.Pipeline(source, 16, seed=0, prefetch=0)
  halves = [data.Pipeline(source, 16, seed=0, prefetch=0, process_index=i, process_count=2) for i in range(2)]
  for _ in range(5):
    whole = next(one)["label"]
    np.testing.assert_array_equal(np.concatenate([next(h)["label"] for h in halves]), whole)


def test_label_fraction_shrinks_the_train_split_only(tmp_path):
  config = defaults.get_config("classifier").data
  config.source, config.synthetic_num_examples, config.label_fraction = "synthetic", 400, 0.1
  dataset = data.load(config)
  assert 35 <= len(dataset.train) <= 45 and len(dataset.eval_train) == 400
  assert sorted(np.unique(dataset.train.labels)) == list(range(10))
  for value in (0.0, 1.5):
    full = defaults.get_config("classifier")
    full.data.label_fraction = value
    with pytest.raises(ConfigError, match=f"config.data.label_fraction={value}"):
      validate.validate(full, num_devices=1)


# --- the command line: errors and an exact resume ----------------------------------------------------------

STEPS = 6
ARGS = ["--config=configs/finetune.py", "--config.data.source=synthetic", "--config.data.synthetic_size=16",
        "--config.augment.size=16", "--config.train.batch_size=16", f"--config.train.num_steps={STEPS}",
        "--config.train.checkpoint_every=1", "--config.train.keep_checkpoints=2", "--config.train.log_every=1",
        "--config.eval.at_end=False", "--config.method.mixup_alpha=0.8", "--config.method.cutmix_alpha=1.0",
        "--config.method.label_smoothing=0.1"]


def _env():
  return dict(os.environ, XLA_FLAGS=cpu_flags(2), JAX_PLATFORMS="cpu")


def _finetune(workdir, *extra, config="configs/finetune.py"):
  args = [a if not a.startswith("--config=") else f"--config={config}" for a in ARGS]
  return [sys.executable, "-m", "jaxssl.finetune", f"--workdir={workdir}", *args, *extra]


@pytest.mark.slow
def test_the_command_refuses_bad_input_in_one_line(pretrained, tmp_path):
  cases = [([], "config.method.pretrained='': name the pretraining run with --pretrained DIR"),
           ([f"--pretrained={tmp_path / 'nowhere'}"], "has no config.json: not a jaxssl run directory"),
           ([f"--pretrained={pretrained}"], "python -m jaxssl.finetune trains a classifier"),
           ([f"--pretrained={pretrained}", "--step=1"], f"config.method.pretrained_step=1 (--step): {pretrained}/"
            "checkpoints has no checkpoint of that step (it has: 2)"),
           # A recipe for one encoder family given the other's encoder: the ViT recipe on the ResNet run, the
           # ResNet recipe on ViT weights.
           ([f"--pretrained={pretrained}"], f"config.model.encoder='small_resnet': --pretrained='{pretrained}' has a "
            "resnet encoder, but the config is a recipe for vits (its own model.encoder='vit_micro'): use "
            "configs/finetune.py"),
           (["--pretrained=tests/data/weights/timm_vit_micro"], "has a vit encoder, but the config is a recipe for "
            "resnets (its own model.encoder='small_resnet'): use configs/finetune_vit.py")]
  for i, (extra, message) in enumerate(cases):
    config = {2: "configs/simclr.py", 4: "configs/finetune_vit.py"}.get(i, "configs/finetune.py")
    command = [a for a in _finetune(tmp_path / "ft", *extra, config=config)
               if i != 2 or not a.startswith("--config.method.")]
    result = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "ft").exists()


@pytest.mark.slow
def test_a_fine_tuning_run_killed_mid_epoch_resumes_bit_identically(pretrained, tmp_path):
  extra = [f"--pretrained={pretrained}", "--label_fraction=0.25"]      # 128 examples: 8 steps an epoch
  reference = tmp_path / "reference"
  result = subprocess.run(_finetune(reference, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "fine-tuning (pretrained): from" in result.stdout and "model.encoder='small_resnet'" in result.stdout
  run = tmp_path / "killed"
  process = subprocess.Popen(_finetune(run, *extra), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 600
  while not (run / "checkpoints" / "3").is_dir() and process.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.communicate(timeout=600)
  assert not (run / "checkpoints" / str(STEPS)).is_dir()
  resumed = subprocess.run(_finetune(run, *extra), cwd=ROOT, env=_env(), capture_output=True, text=True,
                           timeout=600)
  assert resumed.returncode == 0 and "resuming from step" in resumed.stdout, resumed.stderr[-3000:]
  restore = lambda w: ocp.StandardCheckpointer().restore(os.path.join(w, "checkpoints", str(STEPS), "state"))
  a, b = jax.tree.leaves(restore(reference)), jax.tree.leaves(restore(run))
  assert len(a) == len(b) > 0
  for x, y in zip(a, b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.slow
def test_the_command_prints_the_fine_tuned_top1_next_to_the_scratch_baseline(pretrained, tmp_path):
  command = _finetune(tmp_path / "ft", f"--pretrained={pretrained}", f"--scratch_workdir={tmp_path / 'scratch'}",
                      "--config.eval.at_end=True")
  first = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  line = [l for l in first.stdout.splitlines() if l.startswith("top-1: ")]
  assert len(line) == 1 and "fine-tuned from" in line[0] and "from scratch (512 labeled examples, 6 steps each)" \
      in line[0], first.stdout[-2000:]
  for workdir in ("ft", "scratch"):
    assert (tmp_path / workdir / "results.json").exists()
  again = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=600)
  assert again.returncode == 0 and line[0] in again.stdout and "is finished" in again.stdout
  both = subprocess.run(command + ["--from=scratch"], cwd=ROOT, env=_env(), capture_output=True, text=True,
                        timeout=600)
  assert both.returncode == 2 and "--scratch_workdir compares a pretrained run" in both.stderr


@pytest.mark.slow
def test_two_processes_fine_tune_a_label_subset_as_one(pretrained, tmp_path):
  """2 processes x 2 devices (jax.distributed over loopback) == 1 process x 4 devices, on 25% of the labels:
  the same subset, the same steps."""
  import json
  import socket

  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  extra = [f"--pretrained={pretrained}", "--label_fraction=0.25", "--config.eval.at_end=True"]
  one = subprocess.run(_finetune(tmp_path / "one", *extra), cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=cpu_flags(4)))
  assert one.returncode == 0, one.stderr[-3000:]
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAXSSL_COORDINATOR=f"127.0.0.1:{port}", JAXSSL_NUM_PROCESSES="2",
             XLA_FLAGS=cpu_flags(2))
  processes = [subprocess.Popen(_finetune(tmp_path / "two", "--distributed", *extra), cwd=ROOT,
                                env=dict(env, JAXSSL_PROCESS_ID=str(i)), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for i in range(2)]
  outputs = [p.communicate(timeout=600)[0] for p in processes]
  assert all(p.returncode == 0 for p in processes), outputs[0][-3000:]
  results = [json.loads((tmp_path / w / "results.json").read_text()) for w in ("one", "two")]
  losses = [[h["loss"] for h in r["history"]] for r in results]
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)
  assert results[0]["results"]["train_examples"] == results[1]["results"]["train_examples"] == 128
  assert results[0]["results"]["top1"] == pytest.approx(results[1]["results"]["top1"], abs=1e-6)
