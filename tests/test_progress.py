"""The console's progress line (jaxssl/common/progress.py): elapsed time and time left as tqdm shows them, and
at most 120 columns whatever the method logs (iBOT logs 17 metrics)."""

import io

from jaxssl.common.progress import Progress, clock_text

# One of iBOT's log lines on Fashion-MNIST, with the loop's speed figures.
IBOT = {"cls_loss": 8.117, "loss": 12.45, "lr": 0.00045, "masked_share": 0.1583, "patch_loss": 4.334,
        "probe_acc": 0.1055, "probe_loss": 2.457, "rep_rank": 5.882, "rep_std": 0.3564, "tau": 0.9912,
        "teacher_temperature": 0.04, "weight_decay": 0.08313, "images_per_s": 88.46, "step_s": 2.894,
        "data_s": 6.612e-05, "compute_s": 2.894, "tflops_per_device": 0.09207}


class Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_the_line_shows_elapsed_and_time_left_and_fits_120_columns():
  clock, out = Clock(), io.StringIO()
  progress = Progress(40, stream=out, clock=clock)
  clock.now += 25.0                                 # compilation and 10 steps
  progress.log(10, dict(IBOT))
  clock.now += 30.0                                 # 10 steps of 3 s
  progress.log(20, {**IBOT, "loss": -1.234e-05})
  first, second = out.getvalue().splitlines()
  # Time left at the first line: 30 steps at its step_s (2.894 s); then at the mean since the first line (3 s).
  assert first.startswith("[#####...............] 10/40 00:25<01:27 loss=12.45 lr=0.00045 cls_loss=8.117 "
                          "patch_loss=4.334 ")
  assert second.startswith("[##########..........] 20/40 00:55<01:00 loss=-1.234e-05 lr=0.00045 ")
  assert first.endswith(" img/s=88.46") and "step_s" not in first and "TFLOP/s" not in first
  assert max(len(first), len(second)) <= 120
  # The same metrics in the same places on every line while they fit; a value grown too wide drops the last.
  names = lambda line: [part.split("=")[0] for part in line.split()[3:]]  # noqa: E731
  assert names(first) == names(second)
  out.truncate(0)
  out.seek(0)
  progress.log(30, {**IBOT, "loss": -1.234e-05, "cls_loss": -1.234e-05, "patch_loss": -1.234e-05})
  (third,) = out.getvalue().splitlines()
  assert len(third) <= 120 and names(third) == names(first)[:-2] + ["img/s"]


def test_a_short_metric_list_shows_whole_and_long_runs_count_hours():
  out = io.StringIO()
  progress = Progress(1000, stream=out, clock=Clock())
  progress.log(1, {"loss": 2.5, "step_s": 4.0, "images_per_s": 64.0})
  assert out.getvalue() == "[....................] 1/1000 00:00<1:06:36 loss=2.5 img/s=64\n"
  assert clock_text(59.6) == "01:00" and clock_text(3600 * 25 + 61) == "25:01:01"


def test_only_the_first_process_prints():
  out = io.StringIO()
  Progress(10, stream=out, enabled=False).log(1, {"loss": 1.0})
  assert out.getvalue() == ""
