"""Read-only inputs as lazy dask arrays with their dimension names.

Formats: Zarr v2/v3 arrays and groups, NetCDF/HDF5, TIFF (a multi-page file
is a stack of planes), globs of image files (one image per plane) and
``.npy``. The format is told by content (magic bytes, Zarr metadata files),
not by suffix. Opening never creates or modifies anything at the path: Zarr
stores are opened read-only, files only for reading; data are read when the
dask array is computed. Every user mistake is a one-line ``InputError``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from hpcscale.io._read_files import open_images_source, open_npy_source, open_tiff_source
from hpcscale.io._read_netcdf import open_netcdf_source
from hpcscale.io._read_zarr import open_zarr_source
from hpcscale.io._source import ChunkSpec, Source, input_error

__all__ = ["Chunks", "InputArray", "describe_input", "open_input"]

# A chunk length for every axis, one per axis, or {dim name: length}; a length
# may be -1 (whole axis) or "auto" (dask's choice). Unnamed dims keep the
# input's own chunks.
Chunks = int | str | Sequence[int | str] | Mapping[str, int | str]

_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")
_HDF5_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5", ".hdf5", ".he5", ".hdf")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_SUPPORTED = "Zarr store, NetCDF/HDF5 file, TIFF file, .npy file or a glob of images"


@dataclass(frozen=True)
class InputArray:
    """One array of an input, lazily loaded.

    ``coords`` holds a 1-D array per dimension name, only for dims the input
    had coordinates for; ``attrs`` are the variable's attributes (units...).
    ``kind`` is one of "zarr", "netcdf", "tiff", "images", "npy".
    """

    data: da.Array
    dims: tuple[str, ...]
    coords: dict[str, np.ndarray[Any, Any]]
    attrs: dict[str, Any]
    path: str
    var: str | None
    kind: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype[Any]:
        dtype: np.dtype[Any] = np.dtype(self.data.dtype)
        return dtype


def open_input(
    path: str | os.PathLike[str], var: str | None = None, chunks: Chunks | None = None
) -> InputArray:
    """Open ``path`` read-only as a dask array.

    ``var`` chooses the array of a Zarr group or the variable of a NetCDF file
    (``group/name`` for nested ones); it may be left out when there is only
    one. ``chunks`` overrides the dask chunks; by default they are the store's
    chunks (Zarr: shards when sharded), whole multiples of the file's chunks
    (NetCDF/HDF5), one plane (TIFF, images) or row slabs (.npy).
    Raises ``InputError`` (one line) for a missing path, an unknown format, a
    glob matching nothing, an unknown ``var`` or bad ``chunks``.
    """
    text = os.path.expanduser(os.fspath(path))
    source = _open_source(text, var)
    spec = _chunk_spec(text, chunks, source)
    return InputArray(
        data=source.make(spec),
        dims=source.dims,
        coords=source.coords,
        attrs=source.attrs,
        path=text,
        var=source.var,
        kind=source.kind,
    )


def describe_input(
    path: str | os.PathLike[str], var: str | None = None, chunks: Chunks | None = None
) -> dict[str, Any]:
    """A small JSON-ready summary of an input, for ``plan`` and ``preview``.

    Keys: path, kind, var, dims, shape, dtype, chunks (the largest chunk),
    nchunks, nbytes, coords (names of dims with coordinates), units.
    """
    arr = open_input(path, var, chunks)
    return {
        "path": arr.path,
        "kind": arr.kind,
        "var": arr.var,
        "dims": list(arr.dims),
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "chunks": [int(c) for c in arr.data.chunksize],
        "nchunks": int(np.prod(arr.data.numblocks, dtype=np.int64)),
        "nbytes": int(arr.data.nbytes),
        "coords": sorted(arr.coords),
        "units": arr.attrs.get("units"),
    }


def _open_source(path: str, var: str | None) -> Source:
    kind = _detect(path)
    if var is not None and kind not in ("zarr", "netcdf", "netcdf3"):
        raise input_error(path, f"--var {var} applies only to Zarr groups and NetCDF/HDF5 files")
    if kind == "zarr":
        return open_zarr_source(path, var)
    if kind == "netcdf":
        return open_netcdf_source(path, var, engine="h5netcdf")
    if kind == "netcdf3":
        return open_netcdf_source(path, var, engine="scipy")
    if kind == "tiff":
        return open_tiff_source(path)
    if kind == "npy":
        return open_npy_source(path)
    return open_images_source(path)


def _detect(path: str) -> str:
    """The reader for ``path``: by Zarr metadata files, magic bytes, then suffix."""
    if not os.path.lexists(path):
        if any(c in path for c in "*?["):
            return "images"
        raise input_error(path, "no such file or directory")
    p = Path(path)
    if p.is_dir():
        if any((p / marker).is_file() for marker in _ZARR_MARKERS):
            return "zarr"
        raise input_error(
            path,
            "directory is not a Zarr store (no zarr.json, .zgroup or .zarray); "
            f"for a folder of images pass a glob such as '{path.rstrip('/')}/*.tif'",
        )
    try:
        with p.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise input_error(path, f"cannot read: {exc.strerror or exc}") from exc
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "netcdf"
    if head[:3] == b"CDF":
        return "netcdf3"
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    # An HDF5 file with a user block has its signature further in.
    if p.suffix.lower() in _HDF5_SUFFIXES:
        return "netcdf"
    raise input_error(path, f"unknown format; expected a {_SUPPORTED}")


def _chunk_spec(path: str, chunks: Chunks | None, source: Source) -> ChunkSpec:
    """Per-axis chunks from the caller's ``chunks``, the input's own where unsaid."""
    native: ChunkSpec = source.native_chunks
    dims, ndim = source.dims, len(source.dims)
    if chunks is None:
        return native
    if isinstance(chunks, int | str):
        spec: ChunkSpec = (chunks,) * ndim
    elif isinstance(chunks, Mapping):
        unknown = [str(k) for k in chunks if k not in dims]
        if unknown:
            raise input_error(
                path,
                f"chunks name unknown dims ({', '.join(unknown)}); "
                f"the array has dims ({', '.join(dims)})",
            )
        spec = tuple(chunks.get(d, n) for d, n in zip(dims, native, strict=True))
    else:
        spec = tuple(chunks)
        if len(spec) != ndim:
            raise input_error(
                path,
                f"chunks {list(spec)} has {len(spec)} entries; "
                f"the array has {ndim} dims ({', '.join(dims)})",
            )
    for value in spec:
        ok_int = (
            isinstance(value, int) and not isinstance(value, bool) and (value > 0 or value == -1)
        )
        if not ok_int and value != "auto":
            raise input_error(
                path, f"chunks has {value!r}; each length must be a positive integer, -1 or 'auto'"
            )
    return spec
