"""The config schema and its defaults, shared presets, validation, config files."""
