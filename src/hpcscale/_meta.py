"""The package's version, and when the command started (a run's start-up counts from it).

Here rather than in ``hpcscale/__init__.py``, which also offers the public API
(:mod:`hpcscale.api`): modules that need these names import them from here, so
none of them depends on the package's ``__init__``.
"""

import time
from importlib.metadata import PackageNotFoundError, version

# When the command started, as near as Python lets us see: this module is among
# the first things it imports (``hpcscale/__init__.py`` imports it first).
STARTED = time.time()

try:
    __version__ = version("hpcscale")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"
