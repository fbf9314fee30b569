"""A config file (``--config=FILE[:ARGUMENT]``) loaded and called once before absl's flag parsing, so that
whatever is wrong with it is one line naming the file: it cannot be read or parsed, its import raises or exits,
it has no callable ``get_config``, ``get_config`` raises, or it returns something other than a ConfigDict.

Any callable ``get_config`` serves, however the module binds the name (a ``def`` inside an ``if``, an import,
a ``functools.partial``), as for ml_collections' ``config_flags``, which loads the file again afterwards.
"""

from __future__ import annotations

import ast
import importlib.util
import os

import ml_collections


class ConfigFileError(ValueError):
  """A config file that cannot give a config; the message is one line."""


def _one_line(e: BaseException) -> str:
  text = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
  text = " ".join(text.split())
  return f"{type(e).__name__}: {text}" if text else type(e).__name__


def load(value: str) -> ml_collections.ConfigDict:
  """The config that ``--config=value`` names (``FILE`` or ``FILE:ARGUMENT``, the argument handed to
  ``get_config``). Raises ConfigFileError with what is wrong, prefixed by ``--config=value``."""
  path, *argument = value.split(":", 1)
  where = f"--config={value}"
  if not os.path.isfile(path):
    raise ConfigFileError(f"--config={path}: no such file")
  try:
    with open(path) as f:
      ast.parse(f.read(), filename=path)
  except SyntaxError as e:
    raise ConfigFileError(f"--config={path}: syntax error at line {e.lineno}: {e.msg}") from None
  except (OSError, ValueError) as e:
    raise ConfigFileError(f"--config={path}: cannot be read ({_one_line(e)})") from None
  spec = importlib.util.spec_from_file_location("jaxssl_config_file", path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except BaseException as e:  # noqa: BLE001 -- user code: an exit or an interrupt at import is bad input too
    if isinstance(e, KeyboardInterrupt):
      raise
    raise ConfigFileError(f"--config={path}: loading it raised {_one_line(e)}") from None
  get_config = getattr(module, "get_config", None)
  if not callable(get_config):
    raise ConfigFileError(f"--config={path}: defines no get_config() (a config file is a Python module with "
                          "get_config() returning a ConfigDict)")
  try:
    config = get_config(*argument)
  except BaseException as e:  # noqa: BLE001
    if isinstance(e, KeyboardInterrupt):
      raise
    raise ConfigFileError(f"{where}: get_config raised {_one_line(e)}") from None
  if config is None:
    raise ConfigFileError(f"--config={path}: get_config() returned None (a missing return?)")
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigFileError(f"--config={path}: get_config() returned a {type(config).__name__}, not an "
                          "ml_collections.ConfigDict (start from jaxssl.schema.defaults.get_config(method))")
  return config
