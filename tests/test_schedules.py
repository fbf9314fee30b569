"""Schedules against the run's length (jaxssl/schema/schedules.py): every Fashion-MNIST config shortened to 30
steps either fits, with one note for what was cut, or is refused in one line naming the field; at its own length
nothing changes."""

import glob
import os

import numpy as np
import pytest

from jaxssl.common.config_checks import ConfigError
from jaxssl.ops import optim
from jaxssl.schema import config_file, schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
                         if not p.endswith(("_imagenet.py", "__init__.py")))
TRAIN_EXAMPLES = 60_000


def _config(name):
  return config_file.load(os.path.join(ROOT, "configs", f"{name}.py"))


def _length(config) -> tuple[int, float]:
  from jaxssl.train import total_steps_for
  return total_steps_for(config, TRAIN_EXAMPLES), TRAIN_EXAMPLES // config.train.batch_size


@pytest.mark.parametrize("name", FASHION_CONFIGS)
def test_each_config_at_30_steps_fits_with_a_note_or_is_refused_in_one_line(name):
  config = _config(name)
  full, per_epoch = _length(config)
  schedules.check(config, full)                      # its own length: nothing refused, nothing cut
  assert schedules.notes(config, full, per_epoch) == []
  try:
    schedules.check(config, 30)
  except ConfigError as e:
    message = str(e)
    assert "\n" not in message and message.startswith("config.") and "never" in message, message
    return
  for note in schedules.notes(config, 30, per_epoch):
    assert "\n" not in note and "warms up over the first 15" in note, note


def test_a_warmup_longer_than_the_run_is_cut_to_half_of_it_and_the_rate_then_decays():
  config = _config("mae")                            # optim.warmup_epochs=1.0: 234 steps at batch 256
  schedule = optim.learning_rate_schedule(config, 30, TRAIN_EXAMPLES // config.train.batch_size)
  peak = optim.peak_learning_rate(config)
  assert np.isclose(float(schedule(15)), peak) and float(schedule(29)) < 0.05 * peak
  (note,) = schedules.notes(config, 30, TRAIN_EXAMPLES // config.train.batch_size)
  assert note.startswith("optim.warmup_epochs=1 is 234 steps, not shorter than the run (30 steps): the learning "
                         "rate warms up over the first 15 instead (50% of the run)")
  full, per_epoch = _length(config)                  # at its own length the schedule is as before
  assert optim.run_warmup(config, full, per_epoch) == optim.warmup_steps(config, per_epoch)


def test_a_layer_frozen_for_the_whole_run_and_a_warmup_that_never_ends_are_refused():
  config = _config("ibot")                           # last layers frozen 117 steps; teacher warm-up 117 steps
  with pytest.raises(ConfigError, match=r"^config.optim.rules\[0\]=\(.*\): freezes the parameters it matches for "
                     r"117 steps, the whole run of 30: they would never train"):
    schedules.check(config, 30)
  config.optim.rules = ()
  with pytest.raises(ConfigError, match=r"^config.method.teacher_temperature_warmup_steps=117: the teacher "
                     r"temperature warms up for 117 steps, not fewer than the run's 30, so that never ends; set it "
                     r"below 30 for this run$"):
    schedules.check(config, 30)
  swav = _config("swav")                             # prototypes frozen for 50 steps
  with pytest.raises(ConfigError, match=r"^config.method.freeze_prototypes_steps=50: the prototypes get no "
                     r"gradient for 50 steps"):
    schedules.check(swav, 30)


def _imagenet_config(method, data):
  import importlib.util
  spec = importlib.util.spec_from_file_location(method, os.path.join(ROOT, "configs", f"{method}_imagenet.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(data)


@pytest.mark.parametrize("method", ["dino", "ibot"])
def test_imagenet_presets_count_their_epochs_in_the_data_they_are_given(method):
  # ImageNet at batch 1024 (1,251 steps an epoch): the steps the preset used to hard-code, so those runs are
  # unchanged; a folder of 10,000 images at batch 256 (39 steps an epoch): 30 and 1 of its own epochs.
  for data, per_epoch, warmup, frozen in (("imagenet2012", 1_281_167 // 1024, 37_530, 1_251),
                                          ("folder", 10_000 // 256, 1_170, 39)):
    config = _imagenet_config(method, data)
    resolved = schedules.in_steps(config, per_epoch)
    m = resolved.method
    assert (m.teacher_temperature_warmup_steps, m.teacher_temperature_hold_steps) == (warmup, per_epoch)
    assert [rule.frozen_steps for rule in optim.rules_of(resolved)] == [frozen]
    assert resolved.optim.frozen_unit == "steps" and config.optim.frozen_unit == "epochs"   # the copy only
    (note,) = schedules.in_epochs_notes(config, resolved, per_epoch)
    assert note == (f"schedules in epochs of this run's data ({per_epoch} steps each): optim.rules[0] frozen 1 "
                    f"epochs = {frozen} steps; method.teacher_temperature_warmup_epochs=30 = {warmup} steps; "
                    f"method.teacher_temperature_hold_epochs=1 = {per_epoch} steps")
  # A config whose schedules are in steps is left as it is, with nothing to say.
  fashion = _config(method)
  assert schedules.in_steps(fashion, 234).to_dict() == fashion.to_dict()
  assert schedules.in_epochs_notes(fashion, fashion, 234) == []


def test_schedules_in_epochs_are_checked():
  config = _imagenet_config("dino", "folder")
  config.optim.rules = (("head/last_layer/.*", 1.0, 1.0, -1.0),)
  with pytest.raises(ConfigError, match=r"frozen count must be a number of epochs >= 0"):
    optim.check_config(config)
  config.method.teacher_temperature_hold_epochs = 0.0
  from jaxssl.methods import dino
  with pytest.raises(ConfigError, match=r"^config.method.teacher_temperature_hold_epochs=0.0: must be positive"):
    dino.check(config)
