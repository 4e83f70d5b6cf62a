"""What every input reader hands back to ``inputs.open_input``, and its error helper."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import dask.array as da
import dask.config
import numpy as np
from dask.array.core import getter, getter_nofancy
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


class ReadGuard:
    """A dask getter that turns a failed read of one block into a one-line ``InputError``.

    A truncated chunk or a file that cannot be decoded fails in a worker with
    the codec's words only ("Zstd decompression error"); this names the input
    and, through :meth:`where`, the part of it that failed. Pass it as
    ``getitem`` to ``da.from_array``; ``fancy`` as ``from_array``'s own.
    """

    def __init__(self, path: str, fancy: bool = True) -> None:
        self.path = path
        self.fancy = fancy

    def __call__(self, a: Any, b: Any, asarray: bool = True, lock: Any = None) -> Any:
        inner = getter if self.fancy else getter_nofancy
        try:
            return inner(a, b, asarray=asarray, lock=lock)  # type: ignore[no-untyped-call]
        except (InputError, MemoryError):
            raise
        except Exception as exc:
            raise input_error(self.path, f"{self.where(b)} cannot be read "
                                         f"({type(exc).__name__}: {exc})") from exc

    def where(self, key: Any) -> str:
        """What failed to read, in the user's words: here the block's index ranges."""
        parts = key if isinstance(key, tuple) else (key,)
        shown = ", ".join(f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                          for k in parts)
        return f"the block [{shown}]"

    def __dask_tokenize__(self) -> object:
        return (type(self).__name__, self.path, self.fancy)


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
    kind: str, variable: Any, native_chunks: tuple[int, ...], var: str | None,
    guard: ReadGuard | None = None,
) -> Source:
    """A Source for one xarray variable: its dims, 1-D coordinates of its own dims,
    attributes, and dask chunks made on demand, each read through ``guard``."""
    dims = tuple(str(d) for d in variable.dims)
    coords = {
        d: np.asarray(variable.coords[d].values)
        for d in dims
        if d in variable.coords and variable.coords[d].dims == (d,)
    }

    def make(spec: ChunkSpec) -> da.Array:
        extra = {"from_array_kwargs": {"getitem": guard}} if guard is not None else {}
        return cast(da.Array, variable.chunk(dict(zip(dims, spec, strict=True)), **extra).data)

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
