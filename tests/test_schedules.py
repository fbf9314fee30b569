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
