"""jaxssl: self-supervised visual representation learning in JAX and Flax.

Modules: ``losses`` (pure loss functions), ``augment`` (on-device views), ``models`` (ResNets, heads),
``methods`` (the registry of methods), ``train`` (the data-parallel trainer), ``evaluate`` (kNN).
"""

__version__ = "0.1.0"
