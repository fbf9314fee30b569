"""``jaxssl.augment``, as earlier code and users' config files import it: the module is
``jaxssl.ops.augment`` (this name is the same module object)."""

import sys

from jaxssl.ops import augment as _module

sys.modules[__name__] = _module
