"""jaxssl: self-supervised visual representation learning in JAX and Flax.

Folders, lowest layer first (each imports only from its own and lower ones; tests/test_layers.py): ``common``
(config errors, run directories, the console), ``ops`` (losses, masks, augmentation, mixing, the optimizer),
``data`` and ``models``, ``methods`` (the Method contract and the registry), ``schema`` (the config's fields,
presets, validation), ``engine`` (state, sharding, FSDP, the step, evaluation), ``runs`` and ``weights`` (runs on
disk and read back; weights from and to PyTorch); then ``train`` (the loop) and the entry points (``main``,
``finetune``, ``evaluate``, ``export``, ``plot``). ``jaxssl.losses``, ``defaults``, ``augment`` and
``config_checks`` remain importable under their earlier names.

``jaxssl.load_encoder(workdir)`` returns a trained encoder as (Flax module, variables).
"""

__version__ = "0.1.0"


def __getattr__(name):
  # Lazy, so that `from jaxssl.losses import ...` does not import orbax and TFDS.
  if name in ("load_encoder", "load_run", "load_config"):
    from jaxssl.runs import restore
    return getattr(restore, name)
  raise AttributeError(f"module 'jaxssl' has no attribute {name!r}")
