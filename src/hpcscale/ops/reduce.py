"""Reductions over named dims that agree with numpy on the whole array.

Output dtypes are numpy's defaults (``sum`` of int16 is int64, ``mean`` of
integers is float64, ``mean`` of float32 is float32). float16/float32 inputs
are accumulated in float64 for sum/mean/std/var and their nan-variants and the
result cast back, so they are at least as accurate as numpy. ``count`` is the
number of non-NaN values (int64). ``std``/``var`` use ``ddof`` (default 0).

``quantile``, ``nanquantile``, ``median`` and ``nanmedian`` need every value of
a reduced slice in one block: the step rechunks the reduced dims to one chunk
and the kept dims so that blocks stay about as large as the input's. It refuses
when one slice alone exceeds ``QUANTILE_MAX_SLICE_BYTES``. bool inputs are
treated as 0/1 there. Quantiles use numpy's default (linear) method.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Annotated, Any, ClassVar, Literal, cast

import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks
from pydantic import Field, model_validator

from hpcscale.ops.base import ArrayInfo, AxisList, AxisRef, NonNegInt, StepModel, block_bytes

PLAIN = ("sum", "mean", "std", "var", "min", "max", "count")
NAN = ("nansum", "nanmean", "nanstd", "nanvar", "nanmin", "nanmax")
QUANTILES = ("quantile", "nanquantile", "median", "nanmedian")
REDUCTIONS = (*PLAIN, *NAN, *QUANTILES)
_DDOF_OPS = ("std", "var", "nanstd", "nanvar")
_FLOAT64_ACCUMULATED = ("sum", "mean", "std", "var", "nansum", "nanmean", "nanstd", "nanvar")

# Largest reduced slice (all values a quantile needs at once). np.quantile copies and
# partitions its input, so a worker needs 2-3x this for one block.
QUANTILE_MAX_SLICE_BYTES = 1 << 30

Block = np.ndarray[Any, Any]


class Reduction(StepModel):
    """``reduce = "<op>"`` over ``axis`` (dim names or integers; omitted: all dims).

    Reduced dims are dropped from the output, or kept with length 1 if ``keepdims``.
    ``q`` (0..1) is required by ``quantile``/``nanquantile`` and refused elsewhere;
    ``ddof`` is accepted by std/var and their nan-variants only. Quantiles and
    medians rechunk their input first (see the module docstring).
    """

    KIND = "reduce"
    FORMS: ClassVar[dict[str, str]] = {
        "reduce": "one of " + ", ".join(REDUCTIONS),
        "axis": "a dim name or integer, or a list of them",
        "keepdims": "true or false",
        "ddof": "an integer >= 0",
        "q": "a number between 0 and 1",
    }

    reduce: Literal[
        "sum", "mean", "std", "var", "min", "max", "count",
        "nansum", "nanmean", "nanstd", "nanvar", "nanmin", "nanmax",
        "quantile", "nanquantile", "median", "nanmedian",
    ]  # fmt: skip
    axis: AxisRef | AxisList | None = None
    keepdims: bool = False
    ddof: NonNegInt = 0
    q: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _options_fit_op(self) -> Reduction:
        needs_q = self.reduce in ("quantile", "nanquantile")
        if needs_q and self.q is None:
            raise ValueError(f"{self.reduce} needs q, the quantile between 0 and 1 (e.g. q = 0.9)")
        if not needs_q and self.q is not None:
            raise ValueError(f"q only applies to quantile and nanquantile, not {self.reduce}")
        if self.ddof and self.reduce not in _DDOF_OPS:
            raise ValueError(f"ddof only applies to {', '.join(_DDOF_OPS)}, not {self.reduce}")
        return self

    # -- planning --

    def _out_dtype(self, dtype: np.dtype[Any]) -> np.dtype[Any]:
        if self.reduce == "count":
            return np.dtype(np.int64)
        # numpy's own answer on a tiny array is the definition we follow.
        if self.reduce in QUANTILES:
            dtype = _quantile_input_dtype(dtype)
        sample = np.ones(2, dtype=dtype)
        if self.reduce in ("quantile", "nanquantile"):
            result = getattr(np, self.reduce)(sample, 0.5)
        else:
            result = getattr(np, self.reduce)(sample)
        return cast("np.dtype[Any]", np.dtype(result.dtype))

    def _plan(self, info: ArrayInfo) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
        """The reduced axes and the chunks of the blocks to reduce."""
        self.check_input(info)
        axes = self.resolve_axes("axis", self.axis, info)
        n = math.prod(info.shape[a] for a in axes)
        if self.reduce in _DDOF_OPS and self.ddof >= n:
            raise self.error(
                f"ddof {self.ddof} leaves no degrees of freedom over {n} values; use ddof < {n}"
            )
        if self.reduce not in QUANTILES:
            return axes, info.chunks
        slice_bytes = n * info.dtype.itemsize
        if slice_bytes > QUANTILE_MAX_SLICE_BYTES:
            dims = ", ".join(info.dims[a] for a in axes)
            raise self.error(
                f"{self.reduce} over ({dims}) needs all {n} values of a slice in one block "
                f"({slice_bytes} bytes, more than {QUANTILE_MAX_SLICE_BYTES}); "
                "reduce over fewer dims"
            )
        spec = tuple(-1 if a in axes else "auto" for a in range(info.ndim))
        limit = max(block_bytes(info.chunks, info.dtype), slice_bytes)
        chunks = normalize_chunks(  # type: ignore[no-untyped-call]
            spec, info.shape, limit=limit, dtype=info.dtype, previous_chunks=info.chunks
        )
        return axes, tuple(tuple(int(c) for c in cs) for cs in chunks)

    def batch_axes(self, info: ArrayInfo) -> tuple[int, ...]:
        """The reduced axes: blocks larger along them give the same output blocks."""
        return self.resolve_axes("axis", self.axis, info)

    def input_chunks(self, info: ArrayInfo) -> tuple[tuple[int, ...], ...]:
        """Input chunks; for quantiles, the rechunked blocks (reduced dims whole)."""
        return self._plan(info)[1]

    def resolve(self, info: ArrayInfo) -> ArrayInfo:
        """Output info: reduced dims dropped (or length 1 with keepdims), numpy's dtype."""
        axes, chunks = self._plan(info)
        dtype = self._out_dtype(info.dtype)
        if self.keepdims:
            return ArrayInfo(
                tuple(1 if a in axes else n for a, n in enumerate(info.shape)),
                dtype,
                info.dims,
                tuple((1,) if a in axes else cs for a, cs in enumerate(chunks)),
            )
        keep = [a for a in range(info.ndim) if a not in axes]
        return ArrayInfo(
            tuple(info.shape[a] for a in keep),
            dtype,
            tuple(info.dims[a] for a in keep),
            tuple(chunks[a] for a in keep),
        )

    # -- graph --

    def apply(self, arr: da.Array, info: ArrayInfo) -> da.Array:
        self.check_array(arr, info)
        # dask's annotations are partial: work on Any, cast the result back.
        x: Any = arr
        axes, chunks = self._plan(info)
        out = self.resolve(info)
        op = self.reduce
        if op in QUANTILES:
            return self._apply_quantile(x.rechunk(chunks), info, axes, out)
        kw: dict[str, Any] = {"axis": axes, "keepdims": self.keepdims}
        if op == "count":
            present = ~da.isnan(x)
            return cast(da.Array, present.sum(dtype=np.int64, **kw))
        if op in _DDOF_OPS:
            kw["ddof"] = self.ddof
        if op in _FLOAT64_ACCUMULATED:
            small_float = info.dtype.kind == "f" and info.dtype.itemsize < 8
            kw["dtype"] = np.float64 if small_float else out.dtype
        result = getattr(da, op)(x, **kw)
        if op in ("nanstd", "nanvar") and self.ddof:
            # numpy: NaN where ddof leaves no degrees of freedom among the non-NaN values;
            # dask divides by zero there (inf) or by a negative count
            count = (~da.isnan(x)).sum(axis=axes, keepdims=self.keepdims)
            result = da.where(count > self.ddof, result, np.nan)
        return cast(da.Array, result.astype(out.dtype) if result.dtype != out.dtype else result)

    def _apply_quantile(
        self, x: Any, info: ArrayInfo, axes: tuple[int, ...], out: ArrayInfo
    ) -> da.Array:
        if info.dtype.kind == "b":
            x = x.astype(np.uint8)
        fn = partial(_quantile_block, op=self.reduce, q=self.q, axes=axes, keepdims=self.keepdims)
        result = x.map_blocks(
            fn,
            dtype=out.dtype,
            chunks=out.chunks,
            drop_axis=() if self.keepdims else axes,
            meta=np.empty((0,) * len(out.shape), dtype=out.dtype),
        )
        return cast(da.Array, result)


def _quantile_input_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    # numpy refuses quantiles of bool; 0/1 gives the fraction-like answer median gives.
    return np.dtype(np.uint8) if dtype.kind == "b" else dtype


def _quantile_block(
    block: Block, *, op: str, q: float | None, axes: tuple[int, ...], keepdims: bool
) -> Block:
    if op in ("quantile", "nanquantile"):
        result = getattr(np, op)(block, q, axis=axes, keepdims=keepdims)
    else:
        result = getattr(np, op)(block, axis=axes, keepdims=keepdims)
    return np.asarray(result)
