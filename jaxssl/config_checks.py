"""``jaxssl.config_checks``, as earlier code and users' config files import it: the module is
``jaxssl.common.config_checks`` (this name is the same module object)."""

import sys

from jaxssl.common import config_checks as _module

sys.modules[__name__] = _module
