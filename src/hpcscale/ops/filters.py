"""Neighbourhood filters as dask graphs whose result equals scipy.ndimage on the whole array.

Each block is filtered by scipy.ndimage with an overlap (``map_overlap``) as deep
as the filter's real reach. At the true array edges no padding is added
(``boundary="none"``), so scipy's own ``mode`` handles them exactly as on the
whole array; for ``mode="wrap"`` the blocks at the edges are padded from the
other end (``boundary="periodic"``). Neighbouring chunks are merged first along
axes where they are smaller than the reach (the overlap must cover it), and
towards four times the reach as long as a block stays small (see
``MERGE_REACH``): a halo as deep as the chunk would triple the work. An axis
held in one chunk gets no overlap.
The result is bit for bit scipy's, except ``uniform`` on floats, whose running
sum depends on where a block starts (differences in the last bit).

``axes`` restricts a filter to some dims: the result equals the scipy filter
applied to every slice along the other dims (e.g. a 2-D filter per time step).
For ``sobel``/``prewitt``, ``axis`` is the derivative's dim (default: the last
dim) and ``axes`` the dims it acts on, smoothing along all of them but ``axis``
(default: all dims, as scipy).

Output dtype is the input dtype, as scipy's: integer inputs give rounded,
possibly wrapped, integers. float16 is refused (scipy cannot filter it); bool is
accepted by the rank filters (median, minimum, maximum, percentile) only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, ClassVar, Literal, cast

import dask.array as da
import numpy as np
from dask.array.overlap import ensure_minimum_chunksize
from pydantic import Field, model_validator

from hpcscale.ops import filter_blocks as blocks
from hpcscale.ops.base import (
    ArrayInfo,
    AxisList,
    AxisRef,
    FiniteFloat,
    Mode,
    PerAxisInt,
    PerAxisNonNegFloat,
    PerAxisNonNegInt,
    PerAxisPosInt,
    PosFloat,
    StepModel,
)

GAUSSIAN_FILTERS = ("gaussian", "gaussian_gradient_magnitude", "gaussian_laplace")
SIZE_FILTERS = ("median", "uniform", "minimum", "maximum", "percentile")
EDGE_FILTERS = ("sobel", "prewitt")
FILTERS = (*GAUSSIAN_FILTERS, *SIZE_FILTERS, *EDGE_FILTERS, "laplace")
MODES = ("reflect", "nearest", "mirror", "constant", "wrap")

_COMMON_FORMS = {
    "filter": "one of " + ", ".join(FILTERS),
    "mode": "one of " + ", ".join(MODES),
    "cval": "a finite number",
    "axes": "a list of dim names or integers",
}

Block = np.ndarray[Any, Any]


@dataclass(frozen=True)
class _Plan:
    axes: tuple[int, ...]  # the axes acted on, sorted
    reach: tuple[int, ...]  # per input axis
    chunks: tuple[tuple[int, ...], ...]  # after merging chunks smaller than the reach
    depth: tuple[int, ...]  # overlap per input axis: the reach, or 0 on a one-chunk axis
    out: ArrayInfo


# Chunks along an axis are merged until they are MERGE_REACH times the filter's
# reach there, while a block with its halo (as float64) stays under
# MERGE_MAX_BYTES and within MERGE_GROWTH times what it was. A halo as deep as
# the chunk triples the work on that axis (gaussian sigma 2 reaches 8 samples:
# 8-plane chunks were filtered as 24 planes); at 4x the reach it adds half.
MERGE_REACH = 4
MERGE_MAX_BYTES = 128 * 2**20
MERGE_GROWTH = 2.5


def _merged(
    reach: tuple[int, ...], chunks: tuple[tuple[int, ...], ...]
) -> tuple[tuple[int, ...], ...]:
    """The chunks a filter works on: never smaller than the reach (else the overlap
    would not cover it), and merged towards MERGE_REACH x the reach within the budget."""

    def merge(r: int, cs: tuple[int, ...], size: int) -> tuple[int, ...]:
        if r == 0 or len(cs) == 1:
            return cs
        return tuple(ensure_minimum_chunksize(min(size, sum(cs)), cs))  # type: ignore[no-untyped-call]

    def padded(cs: list[tuple[int, ...]]) -> int:
        """Bytes of the largest block with its halo, as float64."""
        return 8 * math.prod(max(c) + 2 * (r if len(c) > 1 else 0)
                             for r, c in zip(reach, cs, strict=True))

    out = [merge(r, cs, r) for r, cs in zip(reach, chunks, strict=True)]
    budget = min(MERGE_MAX_BYTES, MERGE_GROWTH * padded(out))
    for ax in sorted(range(len(out)), key=lambda a: -reach[a]):
        trial = list(out)
        trial[ax] = merge(reach[ax], out[ax], MERGE_REACH * reach[ax])
        if padded(trial) <= budget:
            out = trial
    return tuple(out)


class _Filter(StepModel):
    KIND = "filter"
    TRAILING = ("mode", "cval", "axes")
    # Named in the "reaches further than the dim" message.
    REACH_PARAM: ClassVar[str] = ""

    filter: str
    mode: Mode = "reflect"
    cval: FiniteFloat = 0.0
    axes: AxisList | None = None

    # -- what each filter family defines --

    def _acted_axes(self, info: ArrayInfo) -> tuple[int, ...]:
        return self.resolve_axes("axes", self.axes, info)

    def _reach(self, axes: tuple[int, ...], info: ArrayInfo) -> tuple[int, ...]:
        """Samples the filter reads on either side, per acted-on axis."""
        raise NotImplementedError

    def _block_fn(self, axes: tuple[int, ...], info: ArrayInfo) -> Callable[[Block], Block]:
        raise NotImplementedError

    def _allow_bool(self) -> bool:
        return False

    # -- shared planning and graph building --

    def _plan(self, info: ArrayInfo) -> _Plan:
        self.check_input(info, allow_bool=self._allow_bool(), allow_float16=False)
        axes = self._acted_axes(info)
        reach = [0] * info.ndim
        for ax, r in zip(axes, self._reach(axes, info), strict=True):
            if r > info.shape[ax]:
                dim = info.dims[ax]
                raise self.error(
                    f"the filter reaches {r} samples along dim {dim!r}, more than its length "
                    f"{info.shape[ax]}; use a smaller {self.REACH_PARAM} "
                    f"or leave {dim!r} out of axes"
                )
            reach[ax] = r
        chunks = _merged(tuple(reach), info.chunks)
        depth = tuple(r if len(cs) > 1 else 0 for r, cs in zip(reach, chunks, strict=True))
        out = ArrayInfo(info.shape, info.dtype, info.dims, chunks)
        return _Plan(axes, tuple(reach), chunks, depth, out)

    def resolve(self, info: ArrayInfo) -> ArrayInfo:
        """Output info: same shape, dtype and dims; chunks merged where smaller than the reach."""
        return self._plan(info).out

    def halo(self, info: ArrayInfo) -> tuple[int, ...]:
        return self._plan(info).depth

    def input_chunks(self, info: ArrayInfo) -> tuple[tuple[int, ...], ...]:
        return self._plan(info).chunks

    def apply(self, arr: da.Array, info: ArrayInfo) -> da.Array:
        self.check_array(arr, info)
        plan = self._plan(info)
        fn = self._block_fn(plan.axes, info)
        # dask's annotations are partial: work on Any, cast the result back.
        x: Any = arr
        if plan.chunks != arr.chunks:
            x = x.rechunk(plan.chunks)
        meta = np.empty((0,) * info.ndim, dtype=info.dtype)
        if not any(plan.depth):
            return cast(da.Array, x.map_blocks(fn, dtype=info.dtype, meta=meta))
        # "none": scipy's mode at the real edges is exact; wrap needs the far end's values.
        edge = "periodic" if self.mode == "wrap" else "none"
        overlap: Any = da.map_overlap
        return cast(
            da.Array,
            overlap(
                fn,
                x,
                depth=dict(enumerate(plan.depth)),
                boundary=dict.fromkeys(range(info.ndim), edge),
                trim=True,
                allow_rechunk=False,
                dtype=info.dtype,
                meta=meta,
            ),
        )

    def _full(self, values: tuple[Any, ...], axes: tuple[int, ...], ndim: int, rest: Any) -> Any:
        """Per-axis values over all axes, ``rest`` on the axes not acted on."""
        full = [rest] * ndim
        for ax, v in zip(axes, values, strict=True):
            full[ax] = v
        return tuple(full)


# -- gaussian and its derivatives ---------------------------------------------------------------


class GaussianFilter(_Filter):
    """``gaussian``, ``gaussian_gradient_magnitude``, ``gaussian_laplace`` (scipy.ndimage).

    Reach per axis: ``radius`` if given, else ``int(truncate * sigma + 0.5)``;
    0 where sigma is 0 (scipy skips the axis).
    """

    REACH_PARAM = "sigma"
    FORMS: ClassVar[dict[str, str]] = {
        **_COMMON_FORMS,
        "sigma": "a finite number >= 0 per axis",
        "truncate": "a finite number > 0",
        "radius": "an integer >= 0 per axis",
    }

    filter: Literal["gaussian", "gaussian_gradient_magnitude", "gaussian_laplace"]
    sigma: PerAxisNonNegFloat
    truncate: PosFloat = 4.0
    radius: PerAxisNonNegInt | None = None

    @model_validator(mode="after")
    def _truncate_or_radius(self) -> GaussianFilter:
        if self.radius is not None and "truncate" in self.model_fields_set:
            raise ValueError("give truncate or radius, not both (radius fixes the kernel size)")
        return self

    def _reach(self, axes: tuple[int, ...], info: ArrayInfo) -> tuple[int, ...]:
        sigma = self.expand("sigma", self.sigma, axes, info)
        if self.radius is None:
            radius = tuple(int(self.truncate * s + 0.5) for s in sigma)
        else:
            radius = self.expand("radius", self.radius, axes, info)
        # Same threshold as scipy.ndimage.gaussian_filter for skipping an axis.
        return tuple(r if s > 1e-15 else 0 for s, r in zip(sigma, radius, strict=True))

    def _block_fn(self, axes: tuple[int, ...], info: ArrayInfo) -> Callable[[Block], Block]:
        # expand() already checked the lengths in _plan.
        n, ndim = len(axes), info.ndim
        sigma = self.sigma if isinstance(self.sigma, tuple) else (self.sigma,) * n
        radius = self.radius if isinstance(self.radius, tuple) else (self.radius,) * n
        return partial(
            blocks.gaussian_block,
            name=self.filter,
            sigma=self._full(sigma, axes, ndim, 0.0),
            radius=None if self.radius is None else self._full(radius, axes, ndim, 0),
            truncate=self.truncate,
            mode=self.mode,
            cval=self.cval,
            axes=axes,
        )


# -- size-based filters --------------------------------------------------------------------------


class _SizeBase(_Filter):
    """Reach per axis: ``max(size // 2 + origin, (size - 1) // 2 - origin)``."""

    REACH_PARAM = "size"
    FORMS: ClassVar[dict[str, str]] = {
        **_COMMON_FORMS,
        "size": "an integer >= 1 per axis",
        "origin": "an integer per axis",
        "percentile": "a finite number between 0 and 100",
    }

    size: PerAxisPosInt
    origin: PerAxisInt = 0

    def _reach(self, axes: tuple[int, ...], info: ArrayInfo) -> tuple[int, ...]:
        sizes = self.expand("size", self.size, axes, info)
        origins = self.expand("origin", self.origin, axes, info)
        reach = []
        for ax, s, o in zip(axes, sizes, origins, strict=True):
            # scipy's window for output i is [i - s//2 - o, i + (s-1)//2 - o].
            lo, hi = -(s // 2), (s - 1) // 2
            if not lo <= o <= hi:
                raise self.error(
                    f"origin {o} is out of range for size {s} along dim {info.dims[ax]!r}: "
                    f"must be between {lo} and {hi}"
                )
            reach.append(max(s // 2 + o, (s - 1) // 2 - o))
        return tuple(reach)

    def _block_fn(self, axes: tuple[int, ...], info: ArrayInfo) -> Callable[[Block], Block]:
        n, ndim = len(axes), info.ndim
        size = self.size if isinstance(self.size, tuple) else (self.size,) * n
        origin = self.origin if isinstance(self.origin, tuple) else (self.origin,) * n
        # Size 1 / origin 0 on the other axes: the filter then acts on each slice.
        return partial(
            blocks.size_block,
            name=self.filter,
            percentile=getattr(self, "percentile", None),
            size=self._full(size, axes, ndim, 1),
            origin=self._full(origin, axes, ndim, 0),
            mode=self.mode,
            cval=self.cval,
        )


class SizeFilter(_SizeBase):
    """``median``, ``uniform``, ``minimum``, ``maximum`` over a box of ``size`` (scipy.ndimage)."""

    filter: Literal["median", "uniform", "minimum", "maximum"]

    def _allow_bool(self) -> bool:
        return self.filter != "uniform"


class PercentileFilter(_SizeBase):
    """``percentile`` over a box of ``size`` (scipy.ndimage.percentile_filter)."""

    def _allow_bool(self) -> bool:
        return True

    filter: Literal["percentile"]
    percentile: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


# -- derivative stencils -----------------------------------------------------------------------


class EdgeFilter(_Filter):
    """``sobel``, ``prewitt``: derivative along ``axis``, smoothing along the other acted-on dims.

    (scipy.ndimage.sobel/prewitt when ``axes`` covers all dims.)
    """

    REACH_PARAM = "axes"
    FORMS: ClassVar[dict[str, str]] = {**_COMMON_FORMS, "axis": "one dim name or integer"}

    filter: Literal["sobel", "prewitt"]
    axis: AxisRef = -1

    def _acted_axes(self, info: ArrayInfo) -> tuple[int, ...]:
        axes = super()._acted_axes(info)
        (axis,) = self.resolve_axes("axis", self.axis, info)
        if axis not in axes:
            names = ", ".join(info.dims[a] for a in axes)
            raise self.error(
                f"axis {info.dims[axis]!r} (the derivative's dim) must be one of axes ({names})"
            )
        return axes

    def _reach(self, axes: tuple[int, ...], info: ArrayInfo) -> tuple[int, ...]:
        return (1,) * len(axes)

    def _block_fn(self, axes: tuple[int, ...], info: ArrayInfo) -> Callable[[Block], Block]:
        (axis,) = self.resolve_axes("axis", self.axis, info)
        return partial(
            blocks.edge_block,
            name=self.filter,
            axis=axis,
            axes=axes,
            mode=self.mode,
            cval=self.cval,
        )


class LaplaceFilter(_Filter):
    """``laplace``: sum of second differences along the acted-on dims (scipy.ndimage.laplace)."""

    REACH_PARAM = "axes"
    FORMS: ClassVar[dict[str, str]] = _COMMON_FORMS

    filter: Literal["laplace"]

    def _reach(self, axes: tuple[int, ...], info: ArrayInfo) -> tuple[int, ...]:
        return (1,) * len(axes)

    def _block_fn(self, axes: tuple[int, ...], info: ArrayInfo) -> Callable[[Block], Block]:
        return partial(blocks.laplace_block, axes=axes, mode=self.mode, cval=self.cval)


FilterModel = (
    type[GaussianFilter]
    | type[SizeFilter]
    | type[PercentileFilter]
    | type[EdgeFilter]
    | type[LaplaceFilter]
)
FILTER_MODELS: dict[str, FilterModel] = {
    **dict.fromkeys(GAUSSIAN_FILTERS, GaussianFilter),
    **dict.fromkeys(("median", "uniform", "minimum", "maximum"), SizeFilter),
    "percentile": PercentileFilter,
    **dict.fromkeys(EDGE_FILTERS, EdgeFilter),
    "laplace": LaplaceFilter,
}
