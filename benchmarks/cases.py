"""The benchmark's cases: one operation each, as hpcscale steps and as numpy/scipy.

The dask form of each case (the hand-written script's and dask-threaded's) is
``benchmarks.jobqueue_script.OPS``. Filters act on all three dims, as scipy's
defaults do; the pipeline smooths each plane and takes the maximum over z.
``kind`` says which of the issue's targets apply: ``reduction`` (against the
read-only limit) or ``filter`` (against dask threaded); the memory target for
filter-to-Zarr applies to cases whose output is the filtered stack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.jobqueue_script import BINS, RANGE

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "reduction" or "filter"
    description: str
    steps: tuple[dict[str, Any], ...]  # hpcscale [[steps]]
    reference: Callable[[Array], Array]  # numpy/scipy on the whole array
    writes_stack: bool = False  # output is the filtered stack (filter-to-Zarr memory target)
    exact: bool = False  # outputs must be equal, not just close


def _mean(x: Array) -> Array:
    return x.mean(axis=0, dtype=np.float64).astype(np.float32)


def _std(x: Array) -> Array:
    return np.asarray(x.std(dtype=np.float64), dtype=np.float32)


def _histogram(x: Array) -> Array:
    return np.stack([np.histogram(plane, BINS, RANGE)[0] for plane in x]).astype(np.int64)


def _gaussian(x: Array) -> Array:
    from scipy import ndimage

    return ndimage.gaussian_filter(x, sigma=2.0)


def _median(x: Array) -> Array:
    from scipy import ndimage

    return ndimage.median_filter(x, size=3)


def _pipeline(x: Array) -> Array:
    from scipy import ndimage

    return ndimage.gaussian_filter(x, sigma=(0.0, 2.0, 2.0)).max(axis=0)


CASES: dict[str, Case] = {c.name: c for c in (
    Case("mean", "reduction", "mean along z",
         ({"reduce": "mean", "axis": ["z"]},), _mean),
    Case("std", "reduction", "std over all axes",
         ({"reduce": "std"},), _std),
    Case("histogram", "reduction", f"histogram per plane, {BINS} bins over {list(RANGE)}",
         ({"histogram": BINS, "range": list(RANGE), "axis": ["y", "x"]},), _histogram,
         exact=True),
    Case("gaussian", "filter", "gaussian sigma 2 (3-D)",
         ({"filter": "gaussian", "sigma": 2.0},), _gaussian, writes_stack=True),
    Case("median", "filter", "median size 3 (3-D)",
         ({"filter": "median", "size": 3},), _median, writes_stack=True, exact=True),
    Case("pipeline", "filter", "gaussian sigma 2 in y, x, then max along z",
         ({"filter": "gaussian", "sigma": 2.0, "axes": ["y", "x"]},
          {"reduce": "max", "axis": ["z"]}), _pipeline),
)}


def parse_cases(text: str | None) -> list[Case]:
    if not text:
        return list(CASES.values())
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")
    return [CASES[n] for n in names]
