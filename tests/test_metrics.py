import json
import os

import jax.numpy as jnp
import numpy as np

from jaxssl.engine import train_step
from jaxssl.runs import metrics
from helpers import on_devices


def test_representation_health_separates_spread_from_collapsed():
  rng = np.random.default_rng(0)
  spread = train_step.representation_health(jnp.asarray(rng.normal(size=(256, 16)), jnp.float32), None)
  assert 0.8 < float(spread["rep_std"]) < 1.1 and float(spread["rep_rank"]) > 12
  line = rng.normal(size=(256, 1)) * rng.normal(size=(1, 16)) + 0.01 * rng.normal(size=(256, 16))
  collapsed = train_step.representation_health(jnp.asarray(np.abs(line) + 5.0, jnp.float32), None)
  assert float(collapsed["rep_std"]) < 0.1 and float(collapsed["rep_rank"]) < 3


def test_representation_health_uses_the_global_batch():
  rng = np.random.default_rng(1)
  h = jnp.asarray(rng.normal(size=(64, 8)), jnp.float32)
  one = train_step.representation_health(h, None)
  eight = on_devices(train_step.representation_health, h, num_devices=8)
  np.testing.assert_allclose(float(eight["rep_std"]), float(one["rep_std"]), rtol=1e-5)
  np.testing.assert_allclose(float(eight["rep_rank"]), float(one["rep_rank"]), rtol=1e-4)


def test_metrics_writer_jsonl_tensorboard_resume_and_collapse_warning(tmp_path, capsys):
  writer = metrics.MetricsWriter(str(tmp_path))
  for step in (1, 2, 3):
    writer.write(step, {"loss": 1.0 / step, "rep_std": 0.5})
  writer.write(3, {"knn_accuracy": 0.5}, prefix="eval")
  writer.write(4, {"loss": 0.2, "rep_std": 0.01})
  writer.write(5, {"loss": 0.2, "rep_std": 0.01})
  writer.close()
  assert capsys.readouterr().err.count("representation std") == 1          # warned once
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [line["step"] for line in lines] == [1, 2, 3, 3, 4, 5] and lines[3]["kind"] == "eval"
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path))
  # Resuming from the checkpoint at step 2 forgets what the interrupted run logged after it, in the file from
  # the resumed run's first line on (a resume that stops before writing one leaves the file as it was).
  resumed = metrics.MetricsWriter(str(tmp_path), resume_step=2)
  resumed.write(3, {"loss": 0.3, "rep_std": 0.5})
  resumed.close()
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(line["step"], line["loss"]) for line in lines] == [(1, 1.0), (2, 0.5), (3, 0.3)]


def test_health_metrics_are_computed_on_log_steps_only():
  """The step runs the SVD only where the loop logs (train.log_every, and the last step), on 8 devices too."""
  from jaxssl import data
  from helpers import Steps
  from tiny import tiny_config

  config = tiny_config("simclr")
  config.train.log_every = 2
  steps = Steps(config, num_devices=8)
  pipeline = data.Pipeline(data.synthetic(64, size=16), config.train.batch_size, seed=0, prefetch=0)
  ranks = [float(steps.step(next(pipeline))["rep_rank"]) for _ in range(3)]
  assert ranks[0] == 0.0 and ranks[1] > 1.0 and ranks[2] > 1.0, ranks        # steps 2 and 3 (the last) log


def test_metrics_jsonl_is_rewritten_only_with_a_new_line_and_a_torn_line_is_dropped(tmp_path, capsys):
  from jaxssl.runs.metrics import MetricsWriter

  path = tmp_path / "metrics.jsonl"
  old = '{"step": 1, "kind": "train", "loss": 2.0}\n{"step": 2, "kind": "train", "loss": 1.5}\n{"step": 3, "ki'
  path.write_text(old)
  writer = MetricsWriter(str(tmp_path), resume_step=1)
  assert "dropped 1 line(s) that are not JSON records" in capsys.readouterr().err
  writer.flush()
  assert path.read_text() == old                # nothing new yet: the old lines stay on disk
  writer.write(2, {"loss": 1.4})
  writer.close()
  lines = [json.loads(line) for line in path.read_text().splitlines()]
  assert [(r["step"], r["loss"]) for r in lines] == [(1, 2.0), (2, 1.4)]
  assert writer.history() == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.4}]


def _events(folder) -> dict[str, list]:
  """{(tag, kind): [steps]} of the TensorBoard events under ``folder`` (tensorboardX's own protobufs)."""
  import struct

  from tensorboardX.proto import event_pb2

  found = {}
  for name in os.listdir(folder):
    if not name.startswith("events.out.tfevents"):
      continue
    raw, i = (folder / name).read_bytes(), 0
    while i < len(raw):
      length = struct.unpack("<Q", raw[i:i + 8])[0]
      event = event_pb2.Event()
      event.ParseFromString(raw[i + 12:i + 12 + length])
      i += 16 + length
      for value in event.summary.value:
        kind = "image" if value.HasField("image") else "scalar" if value.HasField("simple_value") else "other"
        found.setdefault((value.tag, kind), []).append(event.step)
  return found


def test_tensorboard_gets_the_config_hyper_parameters_views_and_reconstructions(tmp_path):
  from jaxssl import train
  from tiny import tiny_config

  config = tiny_config("mae")
  config.train.num_steps, config.train.log_every, config.eval.knn_at_init = 2, 1, False
  train.run(config, str(tmp_path))
  events = _events(tmp_path)
  assert events[("config/text_summary", "other")] == [0]
  assert ("_hparams_/experiment", "other") in events and ("_hparams_/session_start_info", "other") in events
  # After the evaluations only (here the final one; with eval.knn_at_init also at step 0).
  assert events[("views", "image")] == [2] and events[("reconstructions", "image")] == [2]
  assert events[("eval/knn_accuracy", "scalar")] == [2] and events[("train/loss", "scalar")] == [1, 2]
