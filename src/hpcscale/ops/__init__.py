"""Compute steps as pure dask graphs (no I/O): filters, reductions, histograms, and a
user's function per block (``map``).

A job spec's ``[[steps]]`` tables become step objects with ``parse_step``;
each step can ``resolve`` (check against an ``ArrayInfo`` and give the output's
info), report its ``halo`` (overlap depth, for sizing), ``apply`` itself to a
dask array, and give back its table (``to_table``/``describe``).
``build_graph`` chains steps into one graph after checking all of them.
"""

from hpcscale.ops.base import ArrayInfo, StepModel
from hpcscale.ops.filters import (
    FILTERS,
    MODES,
    EdgeFilter,
    GaussianFilter,
    LaplaceFilter,
    PercentileFilter,
    SizeFilter,
)
from hpcscale.ops.histogram import BIN_DIM, MAX_BINS, Histogram
from hpcscale.ops.map import BOUNDARIES, MapStep
from hpcscale.ops.reduce import QUANTILE_MAX_SLICE_BYTES, REDUCTIONS, Reduction
from hpcscale.ops.steps import (
    STEP_KINDS,
    Step,
    build_graph,
    parse_step,
    parse_steps,
    read_batch,
    resolve_steps,
)

__all__ = [
    "BIN_DIM",
    "BOUNDARIES",
    "FILTERS",
    "MAX_BINS",
    "MODES",
    "QUANTILE_MAX_SLICE_BYTES",
    "REDUCTIONS",
    "STEP_KINDS",
    "ArrayInfo",
    "EdgeFilter",
    "GaussianFilter",
    "Histogram",
    "LaplaceFilter",
    "MapStep",
    "PercentileFilter",
    "Reduction",
    "SizeFilter",
    "Step",
    "StepModel",
    "build_graph",
    "parse_step",
    "parse_steps",
    "read_batch",
    "resolve_steps",
]
