"""The stack kinds and the synthesis function (``stacks.app``).

The lazy provider import (``stacks/provider_import.py``) must be in place before the first
import of cdktf, which starts the jsii kernel: installing it here puts it before every stack
module, whoever imports them (``main.py``, the operations CLI, the tests).
"""

from stacks import provider_import

provider_import.install()
