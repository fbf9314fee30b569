import json
import os

import jax.numpy as jnp
import numpy as np

from jaxssl import metrics, train
from helpers import on_devices


def test_representation_health_separates_spread_from_collapsed():
  rng = np.random.default_rng(0)
  spread = train.representation_health(jnp.asarray(rng.normal(size=(256, 16)), jnp.float32), None)
  assert 0.8 < float(spread["rep_std"]) < 1.1 and float(spread["rep_rank"]) > 12
  line = rng.normal(size=(256, 1)) * rng.normal(size=(1, 16)) + 0.01 * rng.normal(size=(256, 16))
  collapsed = train.representation_health(jnp.asarray(np.abs(line) + 5.0, jnp.float32), None)
  assert float(collapsed["rep_std"]) < 0.1 and float(collapsed["rep_rank"]) < 3


def test_representation_health_uses_the_global_batch():
  rng = np.random.default_rng(1)
  h = jnp.asarray(rng.normal(size=(64, 8)), jnp.float32)
  one = train.representation_health(h, None)
  eight = on_devices(train.representation_health, h, num_devices=8)
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
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(tmp_path / "tensorboard"))
  # Resuming from the checkpoint at step 2 forgets what the interrupted run logged after it.
  metrics.MetricsWriter(str(tmp_path), resume_step=2).close()
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [line["step"] for line in lines] == [1, 2]
