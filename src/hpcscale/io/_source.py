"""What every input reader hands back to ``inputs.open_input``, and its error helper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import dask.array as da
import dask.config
import numpy as np
from dask.utils import parse_bytes

from hpcscale.errors import InputError

# One entry per axis: a chunk length, -1 (the whole axis) or "auto" (dask picks).
ChunkSpec = tuple[int | str, ...]


@dataclass(frozen=True)
class Source:
    """An opened input before its dask array is built with the chosen chunks."""

    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    dims: tuple[str, ...]
    native_chunks: tuple[int, ...]
    make: Callable[[ChunkSpec], da.Array]
    coords: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    var: str | None = None


def input_error(path: str, message: str) -> InputError:
    """``InputError`` reading ``input PATH: MESSAGE``, squeezed onto one line."""
    return InputError(f"input {path}: {one_line(message)}")


def one_line(text: object) -> str:
    """``str(text)`` with newlines folded, for messages built from library errors."""
    return " ".join(str(text).split())


def default_dims(ndim: int) -> tuple[str, ...]:
    """``dim_0, dim_1, ...``: xarray's names for axes that have none."""
    return tuple(f"dim_{i}" for i in range(ndim))


def chunk_bytes_limit() -> int:
    """dask's ``array.chunk-size`` in bytes (128 MiB unless configured)."""
    return int(parse_bytes(dask.config.get("array.chunk-size")))


def whole_planes(shape: tuple[int, ...], plane_ndim: int, dtype: np.dtype[Any]) -> tuple[int, ...]:
    """Chunks of one whole plane (the last ``plane_ndim`` axes) per leading index.

    Falls back to dask's automatic split of the plane when one plane is larger
    than dask's chunk-size, so that a huge single image is not one task.
    """
    lead = len(shape) - plane_ndim
    plane = shape[lead:]
    if int(np.prod(plane, dtype=np.int64)) * dtype.itemsize <= chunk_bytes_limit():
        spec: ChunkSpec = (1,) * lead + tuple(plane)
    else:
        spec = (1,) * lead + ("auto",) * plane_ndim
    return first_chunks(spec, shape, dtype)


def first_chunks(
    spec: ChunkSpec | str,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    previous: tuple[int, ...] | None = None,
) -> tuple[int, ...]:
    """The leading chunk length per axis of dask's chunking of ``shape`` by ``spec``."""
    chunks = da.core.normalize_chunks(  # type: ignore[no-untyped-call]
        spec, shape, dtype=dtype, previous_chunks=previous
    )
    return tuple(int(c[0]) if c else 1 for c in chunks)


def xarray_source(
    kind: str, variable: Any, native_chunks: tuple[int, ...], var: str | None
) -> Source:
    """A Source for one xarray variable: its dims, 1-D coordinates of its own dims,
    attributes, and dask chunks made on demand."""
    dims = tuple(str(d) for d in variable.dims)
    coords = {
        d: np.asarray(variable.coords[d].values)
        for d in dims
        if d in variable.coords and variable.coords[d].dims == (d,)
    }

    def make(spec: ChunkSpec) -> da.Array:
        return cast(da.Array, variable.chunk(dict(zip(dims, spec, strict=True))).data)

    return Source(
        kind=kind,
        shape=tuple(variable.shape),
        dtype=variable.dtype,
        dims=dims,
        native_chunks=native_chunks,
        make=make,
        coords=coords,
        attrs=dict(variable.attrs),
        var=var,
    )
