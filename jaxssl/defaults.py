"""``jaxssl.defaults``, as earlier code and users' config files import it: the module is
``jaxssl.schema.defaults`` (this name is the same module object)."""

import sys

from jaxssl.schema import defaults as _module

sys.modules[__name__] = _module
