"""hpcscale: chunked array work on SLURM clusters from named site profiles."""

import time
from importlib.metadata import PackageNotFoundError, version

# When the command started, as near as Python lets us see: this package is
# among the first things it imports. A run's start-up is counted from here.
STARTED = time.time()

try:
    __version__ = version("hpcscale")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["STARTED", "__version__"]
