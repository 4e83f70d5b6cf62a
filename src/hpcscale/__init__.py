"""hpcscale: chunked array work on SLURM clusters from named site profiles."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hpcscale")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
