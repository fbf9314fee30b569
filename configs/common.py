"""Shared defaults for the configs in this folder: ``jaxssl.defaults.get_config(method)`` (the schema)."""

from jaxssl.defaults import get_config  # noqa: F401
