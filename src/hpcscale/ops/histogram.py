"""Fixed-bin histograms, over the whole array or one per index of the kept dims.

``histogram = <bins>`` with a required ``range = [lo, hi]``; ``axis`` names the
dims histogrammed over (reduced), all of them if omitted. On (time, y, x),
``axis = ["y", "x"]`` gives one histogram per time step, dims (time, bin).

Counts are int64 and equal ``np.histogram(values, bins, range)`` for every kept
index: bins are half-open ``[edge_i, edge_i+1)`` except the last, which includes
``hi``; values outside the range, NaN and infinities are not counted. Binning
follows numpy in the data's dtype (float32 data against float32 edges); bool is
counted as 0/1 as numpy does.

Each block yields the counts of its part (kept dims x bins, int64), summed over
the blocks along the reduced dims. That per-block array is kept-block-size x
bins x 8 bytes: many bins with large kept chunks cost memory.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Annotated, Any, ClassVar, cast

import dask.array as da
import numpy as np
from pydantic import BeforeValidator, Field, model_validator

from hpcscale.ops.base import ArrayInfo, AxisList, AxisRef, FiniteFloat, StepModel

MAX_BINS = 1 << 20
BIN_DIM = "bin"
# Values binned at a time inside a block, to bound the temporaries numpy makes.
_LONG_ROW = 1 << 14  # values per kept index from which rows are counted one by one
_BATCH = 1 << 20

Block = np.ndarray[Any, Any]


def _range_tuple(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


class Histogram(StepModel):
    """``histogram = <bins>`` over ``axis`` with ``range = [lo, hi]``."""

    KIND = "histogram"
    HOLDS_GIL = True  # numpy's histogram: 1.06x on 2 threads (docs/performance.md)
    FORMS: ClassVar[dict[str, str]] = {
        "histogram": f"the number of bins, an integer between 1 and {MAX_BINS}",
        "range": "[lo, hi], two finite numbers with lo < hi",
        "axis": "a dim name or integer, or a list of them",
    }

    histogram: Annotated[int, Field(ge=1, le=MAX_BINS)]
    range: Annotated[tuple[FiniteFloat, FiniteFloat], BeforeValidator(_range_tuple)]
    axis: AxisRef | AxisList | None = None

    @model_validator(mode="after")
    def _ordered_range(self) -> Histogram:
        lo, hi = self.range
        if not lo < hi:
            raise ValueError(
                f"range must be [lo, hi], two finite numbers with lo < hi, got {[lo, hi]}"
            )
        return self

    @property
    def name(self) -> str:
        return "histogram"

    @classmethod
    def table_name(cls, table: dict[str, Any]) -> str:
        return "histogram"

    @property
    def bins(self) -> int:
        return self.histogram

    def bin_edges(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The ``bins + 1`` edges (float64), for the output's ``bin`` coordinate."""
        lo, hi = self.range
        return np.linspace(lo, hi, self.bins + 1)

    def bin_centers(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The middle of each bin (float64)."""
        edges = self.bin_edges()
        return (edges[:-1] + edges[1:]) / 2

    def _plan(self, info: ArrayInfo) -> tuple[tuple[int, ...], Block]:
        """The reduced axes and numpy's edges for this dtype (what values are compared to)."""
        self.check_input(info)
        axes = self.resolve_axes("axis", self.axis, info)
        kept = [info.dims[a] for a in range(info.ndim) if a not in axes]
        if BIN_DIM in kept:
            raise self.error(
                f"the output gets a dim named {BIN_DIM!r}, but the input already has one it keeps"
            )
        try:
            # The edges numpy would bin this dtype against (float32 data: float32 edges).
            edges = np.histogram_bin_edges(
                np.empty(0, _count_dtype(info.dtype)), self.bins, self.range
            )
        except ValueError as exc:  # e.g. float16 edges too close to increase
            raise self.error(
                f"{self.bins} bins over {list(self.range)} in {info.dtype}: {exc}"
            ) from None
        return axes, edges

    def resolve(self, info: ArrayInfo) -> ArrayInfo:
        """Output info: the kept dims then ``bin``; int64 counts."""
        axes, _ = self._plan(info)
        keep = [a for a in range(info.ndim) if a not in axes]
        return ArrayInfo(
            (*(info.shape[a] for a in keep), self.bins),
            np.dtype(np.int64),
            (*(info.dims[a] for a in keep), BIN_DIM),
            (*(info.chunks[a] for a in keep), (self.bins,)),
        )

    def apply(self, arr: da.Array, info: ArrayInfo) -> da.Array:
        self.check_array(arr, info)
        axes, edges = self._plan(info)
        lo, hi = self.range
        fn = partial(_block_counts, lo=lo, hi=hi, edges=edges, reduced=axes)
        chunks = tuple((1,) * len(cs) if a in axes else cs for a, cs in enumerate(info.chunks))
        x: Any = arr  # dask's annotations are partial
        counts = x.map_blocks(
            fn,
            dtype=np.int64,
            chunks=(*chunks, (self.bins,)),
            new_axis=info.ndim,
            meta=np.empty((0,) * (info.ndim + 1), dtype=np.int64),
        )
        return cast(da.Array, counts.sum(axis=axes, dtype=np.int64))


def _count_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    # np.histogram converts bool to uint8 (with a warning); do it quietly.
    return np.dtype(np.uint8) if dtype.kind == "b" else dtype


def _block_counts(
    block: Block, *, lo: float, hi: float, edges: Block, reduced: tuple[int, ...]
) -> Block:
    """Counts per kept index of the block, with length-1 reduced axes and bins last."""
    bins = len(edges) - 1
    block = block.astype(_count_dtype(block.dtype), copy=False)
    kept = tuple(a for a in range(block.ndim) if a not in reduced)
    kept_shape = tuple(block.shape[a] for a in kept)
    rows = math.prod(kept_shape)
    flat = np.moveaxis(block, kept + reduced, range(block.ndim)).reshape(rows, -1)
    counts = np.zeros((rows, bins), dtype=np.int64)
    if flat.shape[1] >= _LONG_ROW:
        # Long rows (a plane per kept index): numpy's own histogram, row by row,
        # is about twice as fast as binning all rows at once, which needs row
        # and column indices for every value.
        for i, values in enumerate(flat):
            counts[i] = np.histogram(values, bins, (lo, hi))[0]
        return np.expand_dims(counts.reshape((*kept_shape, bins)), reduced)
    step = max(1, _BATCH // max(1, flat.shape[1]))
    for start in range(0, rows, step):
        part = flat[start : start + step]
        row, idx = _bin_indices(part, lo, hi, edges)
        counts[start : start + step] += np.bincount(
            row * bins + idx, minlength=part.shape[0] * bins
        ).reshape(-1, bins)
    return np.expand_dims(counts.reshape((*kept_shape, bins)), reduced)


def _bin_indices(values: Block, lo: float, hi: float, edges: Block) -> tuple[Block, Block]:
    """Row and bin of every counted value of a 2-D array, exactly as np.histogram bins them.

    This is numpy's uniform-bin fast path (numpy/lib/_histograms_impl.py) applied
    to all rows at once, so edge cases (values on an edge, rounding) match it.
    """
    n = len(edges) - 1
    keep = values >= lo
    keep &= values <= hi  # NaN fails both comparisons, so it is never counted
    row, col = np.nonzero(keep)
    tmp = values[row, col].astype(edges.dtype, copy=False)
    norm_denom = np.float64(hi - lo)  # numpy's _unsigned_subtract of two Python floats
    indices = ((tmp - lo) / norm_denom * n).astype(np.intp)
    indices[indices == n] -= 1
    indices[tmp < edges[indices]] -= 1
    increment = (tmp >= edges[indices + 1]) & (indices != n - 1)
    indices[increment] += 1
    return row, indices
