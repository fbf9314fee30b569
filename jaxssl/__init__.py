"""jaxssl: self-supervised visual representation learning in JAX and Flax.

Modules: ``losses`` (pure loss functions), ``augment`` (on-device views), ``models`` (ResNets, heads),
``methods`` (the Method contract and the registry), ``data`` (sources, pipeline, prepare), ``parallel`` (mesh,
shard_map), ``train_step`` (one device's step), ``train`` (the loop), ``evaluation`` (kNN, linear and online
probes), ``checkpoint`` (orbax), ``restore`` (runs read back).

``jaxssl.load_encoder(workdir)`` returns a trained encoder as (Flax module, variables).
"""

__version__ = "0.1.0"


def __getattr__(name):
  # Lazy, so that `from jaxssl.losses import ...` does not import orbax and TFDS.
  if name in ("load_encoder", "load_run", "load_config"):
    from jaxssl import restore
    return getattr(restore, name)
  raise AttributeError(f"module 'jaxssl' has no attribute {name!r}")
