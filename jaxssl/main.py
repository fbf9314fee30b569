"""Entry point: ``python -m jaxssl.main --config configs/vicreg.py --workdir runs/vicreg [--config.x=y ...]``.

With ``--distributed`` the process joins a multi-process run first (``jax.distributed.initialize``): on TPU
pods and SLURM the cluster is detected; otherwise JAXSSL_COORDINATOR (host:port), JAXSSL_NUM_PROCESSES and
JAXSSL_PROCESS_ID name it (``launch/local.sh`` sets them). Every process runs the same command; process 0
alone prints, the others only their warnings (``jaxssl.common.process_output``).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Callable

from jaxssl.common import xla_flags

xla_flags.use_eigen_convolutions_on_cpu()       # before JAX starts its backend

import ml_collections  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/NAME.py).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for results (and checkpoints).")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Join a multi-process run (jax.distributed.initialize).")
_ALLOW_CHANGE = flags.DEFINE_list("allow_change", [], "Config fields that may differ from the workdir's run on "
                                  "resume, e.g. train.num_epochs to extend it.")
_PRINT_CONFIG = flags.DEFINE_bool("print_config", False, "Print the resolved config (file and overrides), one field "
                                  "a line with its meaning, check it, and exit: nothing is trained or written, and "
                                  "no --workdir is needed.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Check the config, read the data, build the model, compile one step "
                              "and report the parameters, FLOPs per image, memory and the step count and "
                              "schedules, then exit: nothing is trained or written, and no --workdir is needed.")
flags.mark_flags_as_required(["config"])


def initialize_distributed() -> None:
  """jax.distributed.initialize from JAXSSL_* variables when set, else from the cluster's environment."""
  import jax

  if os.environ.get("JAXSSL_COORDINATOR"):
    jax.distributed.initialize(coordinator_address=os.environ["JAXSSL_COORDINATOR"],
                               num_processes=int(os.environ["JAXSSL_NUM_PROCESSES"]),
                               process_id=int(os.environ["JAXSSL_PROCESS_ID"]))
  else:
    jax.distributed.initialize()


def main(argv, prepare: Callable[[ml_collections.ConfigDict], None] | None = None,
         after: Callable[[ml_collections.ConfigDict, dict], None] | None = None) -> int:
  """Trains the --config in --workdir; ``prepare(config)`` may set fields first and ``after(config, results)``
  run more (``jaxssl.finetune``'s flags and its from-scratch baseline). Bad input: one line on stderr, exit
  code 2."""
  if len(argv) > 1:
    print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
    return 2
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)   # orbax and TFDS log every step at INFO; --verbosity=0 shows it
  if _DISTRIBUTED.value:
    initialize_distributed()
    import jax

    from jaxssl.common import process_output

    process_output.filter_stdout(jax.process_index(), jax.process_count())
  from jaxssl.common import command_line

  problem = command_line.backend_problem()
  if problem:
    print(f"error: {problem}", file=sys.stderr)
    return 2
  from jaxssl import train
  from jaxssl.data import DataError
  from jaxssl.runs.checkpoint import CheckpointError
  from jaxssl.runs.run_identity import WorkdirError
  from jaxssl.common.trackers import TrackerError
  from jaxssl.schema.validate import ConfigError
  from jaxssl.train import TrainingError

  try:
    config = _CONFIG.value
    config.keys()                 # ml_collections defers a config file's load error to the first access
  except OSError as e:
    print(f"error: --config: {' '.join(str(e).split())}", file=sys.stderr)
    return 2
  except AttributeError:
    config = None
  if not isinstance(config, ml_collections.ConfigDict):
    print(f"error: --config={_config_file(sys.argv)}: get_config() returned a {type(config).__name__}, not an "
          "ml_collections.ConfigDict (start from jaxssl.schema.defaults.get_config(method))", file=sys.stderr)
    return 2
  if not _WORKDIR.value and not (_PRINT_CONFIG.value or _DRY_RUN.value):
    print("error: --workdir: required (the run's directory: checkpoints, metrics, results.json)", file=sys.stderr)
    return 2
  try:
    if prepare is not None:
      prepare(config)
    _split_lists(config, sys.argv)
    unread = _unread_override(config, sys.argv)
    if unread:
      print(f"error: {unread}", file=sys.stderr)
      return 2
    if _PRINT_CONFIG.value:
      _print_config(config)
      return 0
    if _DRY_RUN.value:
      from jaxssl import dry_run

      dry_run.dry_run(config)
      return 0
    results = train.run(config, _WORKDIR.value, allow_change=_ALLOW_CHANGE.value)
    if after is not None and not results.get("preempted"):
      after(config, results)
  except (ConfigError, DataError, CheckpointError, TrainingError, TrackerError, WorkdirError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print("interrupted (Ctrl-C): stopped at once, unsaved; the same command resumes from the last checkpoint",
          file=sys.stderr)
    return 130
  except OSError as e:                # the file system failed under the run (read-only, gone, full)
    where = f"{e.filename}: " if getattr(e, "filename", None) else ""
    print(f"error: {where}{e.strerror or e} ({type(e).__name__}); the checkpoints already saved are intact",
          file=sys.stderr)
    return 2
  return 0


def _overrides(argv: list[str]) -> list[tuple[str, str]]:
  """(argument, dotted field) of each ``--config.FIELD[=VALUE]`` on the command line."""
  return [(arg, arg[len("--config."):].split("=", 1)[0]) for arg in argv[1:] if arg.startswith("--config.")]


def _split_lists(config: ml_collections.ConfigDict, argv: list[str]) -> None:
  """A tuple field set on the command line as ``a,b`` (``--config.metrics.writers=tensorboard,wandb``), which
  config_flags reads as the one string ``('a,b',)``, becomes ``('a', 'b')``."""
  for _, field in _overrides(argv):
    section, _, name = field.partition(".")
    if not name or section not in config or not isinstance(config[section], ml_collections.ConfigDict):
      continue
    value = config[section].get(name)
    if isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], str) and "," in value[0]:
      config[section][name] = tuple(part.strip() for part in value[0].split(",") if part.strip())


def _unread_override(config: ml_collections.ConfigDict, argv: list[str]) -> str | None:
  """The first ``--config.model.X`` override on the command line that the config's encoder does not read (a
  ResNet's stem on a ViT, a ViT's patch size on a ResNet), even at its default value: the user meant something
  the run would ignore. ``validate`` refuses such a field only where it differs from its default."""
  from jaxssl.schema import fields

  unread = set(fields.other_family_fields(config))
  for arg, field in _overrides(argv):
    if field in unread:
      readers = {"vit": "ViTs", "resnet": "ResNets"}[fields.MODEL[field.split(".")[1]].only]
      return f"{arg}: only {readers} read it; model.encoder={config.model.encoder!r}"
  return None


def _print_config(config: ml_collections.ConfigDict) -> None:
  """``--print_config``: the config checked as a run would check it on this machine's devices (ConfigError),
  then its fields and their meaning on stdout."""
  import jax

  from jaxssl import train
  from jaxssl.schema import fields

  train.check(config)
  print(fields.describe(config))
  print(f"# valid on {jax.device_count()} {jax.devices()[0].platform} device(s)")


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad flag or config override turned into one line and exit code 2; --help
  prints the usage and exits 0."""
  if any(a in ("--help", "-h", "-?", "--helpshort") for a in argv[1:]):
    print(usage(sys.modules["__main__"].__doc__ or __doc__))
    sys.exit(0)
  argv = last_overrides(argv)
  config_file = _config_file(argv)
  loaded = None
  if _config_arg(argv):
    from jaxssl.schema import config_file as config_files

    try:
      loaded = config_files.load(_config_arg(argv))
    except config_files.ConfigFileError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)
  logging.set_verbosity(logging.ERROR)          # config_flags' own warning would repeat the error line
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # noqa: BLE001 -- the config file is user code: any exception is bad input
    if not isinstance(e, (flags.Error, AttributeError, KeyError, TypeError, ValueError, OSError)):
      where = f"--config={config_file}: " if config_file else ""
      print(f"error: {where}loading it raised {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
      sys.exit(2)
    if "Error whilst parsing config file" in str(e):       # config_flags wraps get_config's exception
      last = str(e).strip().splitlines()[-1].strip()
      print(f"error: --config={_config_arg(argv)}: get_config raised {last}", file=sys.stderr)
      sys.exit(2)
    if "must have a value other than None" in str(e) and config_file:
      print(f"error: --config={config_file}: get_config() returned None (a missing return?)", file=sys.stderr)
      sys.exit(2)
    raw = str(e)
    if len(raw) > 1 and raw[0] == raw[-1] and raw[0] in "\"'":     # absl quotes some messages whole
      raw = raw[1:-1]
    message = " ".join(raw.split())
    if isinstance(e, (AttributeError, KeyError)):
      text = str(e.args[0]) if e.args else str(e)
      name = re.search(r"'([^'\\]+)", text)
      raw = name.group(1) if name else text
      suggestion = re.search(r'Did you mean \\?"([^"\\]+)', text)
      culprits = [a for a in argv[1:] if a.startswith("--config.") and raw and raw in a]
      close = suggestion.group(1) if suggestion else _close_field(loaded, culprits[0] if culprits else "")
      message = f"no such config field {raw!r}" + (f"; did you mean {close!r}?" if close else "")
    culprits = [a for a in argv[1:] if a.startswith("--config.") and raw and raw in a]
    print(f"error: {culprits[0] + ': ' if culprits else ''}{message}", file=sys.stderr)
    sys.exit(2)

def _close_field(config, override: str) -> str | None:
  """The field of ``override``'s section (``--config.method.temprature=...``) whose name is closest to the one
  given, for a "did you mean"; None if none is close or the config is unknown."""
  import difflib

  path = override[len("--config."):].split("=", 1)[0].split(".") if override.startswith("--config.") else []
  section = config
  for key in path[:-1]:
    section = section.get(key) if isinstance(section, ml_collections.ConfigDict) else None
  if not path or not isinstance(section, ml_collections.ConfigDict):
    return None
  close = difflib.get_close_matches(path[-1], list(section.keys()), n=1)
  return close[0] if close else None


def usage(doc: str) -> str:
  """``--help``: the command's docstring, then each of its flags (this module's and the running command's own,
  e.g. ``jaxssl.finetune``'s) with its meaning and its real default."""
  own = [f for module, fs in flags.FLAGS.flags_by_module_dict().items()
         if module in ("__main__", __name__) or module.endswith(("jaxssl/main.py", "jaxssl/finetune.py"))
         for f in fs]
  lines = [doc.strip(), "", "flags:"]
  for flag in sorted({f.name: f for f in own}.values(), key=lambda f: f.name):
    if flag.name in _REQUIRED:
      default = _REQUIRED[flag.name]
    elif flag.default in (None, "", []):
      default = "none"
    else:
      default = f"default: {flag.default_as_str.strip(chr(39))}"
    lines.append(_wrapped(f"--{flag.name}: {flag.help} ({default})"))
  lines.append(_wrapped("--config.FIELD=VALUE: override one field of the config (--print_config lists them with "
                        "their meaning)"))
  return "\n".join(lines)


def _wrapped(text: str) -> str:
  import textwrap

  return textwrap.fill(" ".join(text.split()), 110, initial_indent="  ", subsequent_indent="      ")


_REQUIRED = {"config": "required", "workdir": "required, except with --print_config and --dry_run"}


def _config_arg(argv: list[str]) -> str | None:
  """The --config value on the command line (a file, maybe with ":argument")."""
  for i, arg in enumerate(argv[1:], 1):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _config_file(argv: list[str]) -> str | None:
  """The --config file named on the command line, without its ":argument"."""
  value = _config_arg(argv)
  return value.split(":", 1)[0] if value else None


def last_overrides(argv: list[str]) -> list[str]:
  """``argv`` with each --config.FIELD given more than once kept at its last occurrence only: the last value
  wins for every field, as absl does for its own flags (for a tuple field absl would join the values: (32,)
  then (64,) gave (32, 64), and (32,) then () kept (32,))."""
  spans = []                                      # (field, first index, index past its value)
  i = 1
  while i < len(argv):
    arg = argv[i]
    takes_next = arg.startswith("--config.") and "=" not in arg and i + 1 < len(argv) and \
        not argv[i + 1].startswith("--")
    if arg.startswith("--config."):
      spans.append((arg.split("=", 1)[0], i, i + 2 if takes_next else i + 1))
    i += 2 if takes_next else 1
  last = {field: start for field, start, _ in spans}
  dropped = {j for field, start, end in spans if last[field] != start for j in range(start, end)}
  return [a for j, a in enumerate(argv) if j not in dropped]


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
