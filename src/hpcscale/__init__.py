"""hpcscale: chunked array work and your own functions on SLURM clusters, from named
site profiles.

From Python and Jupyter (:mod:`hpcscale.api`)::

    with hpcscale.cluster("mylab", jobs=10) as client: ...
    hpcscale.plan("jobs/x.toml", site="mylab")
    hpcscale.submit("jobs/x.toml", site="mylab", jobs=4)
    hpcscale.map("scans/*.tif", "mylab/segment.py:segment", "results/", site="mylab")

These four are loaded on first use, so ``import hpcscale`` (and the command line)
stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpcscale._meta import STARTED, __version__

if TYPE_CHECKING:
    from hpcscale.api import cluster, map, plan, submit

__all__ = ["STARTED", "__version__", "cluster", "map", "plan", "submit"]

_API = ("cluster", "map", "plan", "submit")


def __getattr__(name: str) -> Any:
    if name in _API:
        from hpcscale import api

        return getattr(api, name)
    raise AttributeError(f"module 'hpcscale' has no attribute {name!r}")
