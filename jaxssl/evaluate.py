"""``python -m jaxssl.evaluate --workdir DIR``: a saved run's kNN, online-probe and linear-probe accuracy.

The command line around ``jaxssl.engine.evaluation`` (the library) and ``jaxssl.runs.restore`` (a run read back).
"""

from __future__ import annotations

import sys

import jax

from jaxssl.evals import evaluate_state, summary


def main(argv: list[str] | None = None) -> int:
  """Restores a run's latest checkpoint and prints kNN, online-probe and linear-probe accuracy; writes
  ``eval.json`` in the workdir. Bad input: one line on stderr, exit code 2."""
  import json

  from jaxssl.common import command_line

  parser = command_line.ArgumentParser(prog="python -m jaxssl.evaluate", description=main.__doc__.split(";")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--step", type=command_line.non_negative_int, default=None,
                      help="checkpoint step (default: the latest)")
  parser.add_argument("--linear_epochs", type=command_line.positive_int, default=None,
                      help="default: the run's eval.linear_epochs")
  parser.add_argument("--linear_lr", type=command_line.positive_float, default=None)
  parser.add_argument("--linear_augment", action="store_true", help="crop + flip the probe's training images")
  parser.add_argument("--no_linear", action="store_true", help="kNN (and online probe) only")
  args = parser.parse_for_jax(argv)

  from jaxssl import data
  from jaxssl.engine.parallel import make_mesh, replicate
  from jaxssl.runs.checkpoint import CheckpointError
  from jaxssl.runs.restore import load_run

  try:
    run = load_run(args.workdir, args.step, field="--workdir")
    config = run.config
    with config.unlocked():
      if args.linear_epochs is not None:
        config.eval.linear_epochs = args.linear_epochs
      if args.linear_lr is not None:
        config.eval.linear_lr = args.linear_lr
      config.eval.linear_augment = bool(args.linear_augment or config.eval.linear_augment)
      config.eval.linear_probe = not args.no_linear
    if config.eval.linear_epochs <= 0 or not config.eval.linear_lr > 0:
      raise data.DataError(f"--linear_epochs={config.eval.linear_epochs} / --linear_lr={config.eval.linear_lr}: "
                           "must be positive")
    dataset = data.load(config.data)
    for field, split in (("eval_train_split", dataset.eval_train), ("test_split", dataset.test)):
      if split is None:
        name = config.data[field] or config.data.train_split
        raise data.DataError(f"config.data.{field}={name!r} has no labels: kNN and the linear probe need a "
                             "labeled split; set it in the run's config.json")
  except (CheckpointError, data.DataError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2

  mesh = make_mesh()
  scores = evaluate_state(run.trainer, replicate(run.state, mesh), dataset, mesh)
  step = int(run.state.step)
  print(f"{config.method.name} at step {step}: {summary(scores)}", flush=True)
  if jax.process_index() == 0:
    from jaxssl.common.workdir import resolve

    record = {"step": step, "linear_epochs": config.eval.linear_epochs,
              "linear_augment": config.eval.linear_augment, **scores}
    path = resolve(args.workdir) / "eval.json"
    try:
      path.write_text(json.dumps(record, indent=1))
    except OSError as e:
      print(f"error: {path} could not be written ({type(e).__name__}: {e.strerror or e}); the scores above are "
            "not saved", file=sys.stderr)
      return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
