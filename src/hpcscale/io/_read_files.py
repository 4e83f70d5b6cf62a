"""File inputs that are not self-describing stores: TIFF, globs of images, ``.npy``.

Each is wrapped in a small reader object that dask slices chunk by chunk.
The readers hold only paths, shape and dtype, so a task graph pickles small
and every worker opens the files itself; nothing is read at open time beyond
headers.
"""

from __future__ import annotations

import glob
import os
import warnings
from typing import Any, cast

import dask.array as da
import numpy as np
import tifffile

from hpcscale.io._source import (
    ChunkSpec,
    ReadGuard,
    Source,
    chunk_bytes_limit,
    default_dims,
    first_chunks,
    input_error,
    whole_planes,
)

# pims (which dask-image reads images with) calls scikit-image's imread with
# ``plugin=``, which scikit-image 0.25 deprecates with a FutureWarning on every
# image: not the user's business, and it would be a line per plane on the terminal.
PIMS_PLUGIN_WARNING = r"(?s).*use the parameter `plugin`"
warnings.filterwarnings("ignore", message=PIMS_PLUGIN_WARNING, category=FutureWarning)

_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
_TIFF_ERRORS = (OSError, ValueError, IndexError, tifffile.TiffFileError)
# tifffile's axis letters: I (image sequence) and Q (unknown) are planes.
_TIFF_AXES = {
    "X": "x",
    "Y": "y",
    "Z": "z",
    "T": "t",
    "C": "c",
    "S": "s",
    "I": "plane",
    "Q": "plane",
}

Key = tuple[slice | int, ...]


class _Reader:
    """What ``da.from_array`` needs: shape, dtype, ndim and ``reader[key]``."""

    def __init__(self, label: str, shape: tuple[int, ...], dtype: np.dtype[Any]) -> None:
        self.label = label
        self.shape = shape
        self.dtype = dtype
        self.ndim = len(shape)

    def as_dask(self, spec: ChunkSpec) -> da.Array:
        meta = np.empty((0,) * self.ndim, dtype=self.dtype)
        data = da.from_array(  # type: ignore[no-untyped-call]
            self, chunks=spec, meta=meta, fancy=False, getitem=ReadGuard(self.label, fancy=False))
        return cast(da.Array, data)


class _NpyReader(_Reader):
    def __getitem__(self, key: Key) -> np.ndarray[Any, Any]:
        # A fresh map per read: memmaps do not travel to workers.
        return np.array(np.load(self.label, mmap_mode="r")[key])

    def __dask_tokenize__(self) -> object:
        return ("hpcscale-npy", self.label, os.stat(self.label).st_mtime_ns)


class _TiffReader(_Reader):
    def __getitem__(self, key: Key) -> np.ndarray[Any, Any]:
        import zarr

        # tifffile's zarr view reads only the pages and tiles the key touches.
        with tifffile.imread(self.label, aszarr=True, series=0, level=0) as store:
            view = zarr.open_array(store, mode="r")
            return np.asarray(view[key])

    def __dask_tokenize__(self) -> object:
        return ("hpcscale-tiff", self.label, os.stat(self.label).st_mtime_ns)


class _TiffStackReader(_Reader):
    """One TIFF file per index of the first axis."""

    def __init__(self, pattern: str, files: list[str], shape: tuple[int, ...], dtype: Any) -> None:
        super().__init__(pattern, shape, dtype)
        self.files = files

    def __getitem__(self, key: Key) -> np.ndarray[Any, Any]:
        first, rest = key[0], tuple(key[1:])
        if isinstance(first, int):
            return self._read(first)[rest]
        planes = [self._read(i)[rest] for i in range(self.shape[0])[first]]
        if planes:
            return np.stack(planes)
        return np.empty((0, *self.shape[1:]), self.dtype)[(slice(None), *rest)]

    def _load(self, name: str) -> np.ndarray[Any, Any]:
        try:
            with tifffile.TiffFile(name) as tf:
                return cast(np.ndarray[Any, Any], tf.series[0].asarray())
        except _TIFF_ERRORS as exc:
            raise input_error(self.label, f"cannot read {name} as TIFF: {exc}") from exc

    def _read(self, i: int) -> np.ndarray[Any, Any]:
        name = self.files[i]
        plane = self._load(name)
        if plane.shape != self.shape[1:] or plane.dtype != self.dtype:
            raise input_error(
                self.label,
                f"{name} holds {plane.dtype}{list(plane.shape)} but {self.files[0]} "
                f"holds {self.dtype}{list(self.shape[1:])}; all images must match",
            )
        return plane

    def __dask_tokenize__(self) -> object:
        return ("hpcscale-tiffs", self.label, self.files, os.stat(self.files[0]).st_mtime_ns)


class _ImageStackReader(_TiffStackReader):
    """One image file (PNG, JPEG... read by pims, as dask-image does) per plane."""

    def _load(self, name: str) -> np.ndarray[Any, Any]:
        import pims

        try:
            with pims.open(name) as frames:
                return np.asarray(frames[0])
        # pims raises a different exception type per format plugin.
        except Exception as exc:
            raise input_error(self.label, f"cannot read {name} as an image: {exc}") from exc

    def __dask_tokenize__(self) -> object:
        return ("hpcscale-images", self.label, self.files, os.stat(self.files[0]).st_mtime_ns)


def open_npy_source(path: str) -> Source:
    """A ``.npy`` file, memory-mapped per chunk, in slabs along its slowest axis."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as exc:
        raise input_error(path, f"cannot read as .npy: {exc}") from exc
    shape, dtype = tuple(arr.shape), arr.dtype
    fortran = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
    del arr
    reader = _NpyReader(path, shape, dtype)
    return Source(
        kind="npy",
        shape=shape,
        dtype=dtype,
        dims=default_dims(len(shape)),
        native_chunks=_slabs(shape, dtype, fortran),
        make=reader.as_dask,
    )


def _slabs(shape: tuple[int, ...], dtype: np.dtype[Any], fortran: bool) -> tuple[int, ...]:
    # Slabs of whole rows (columns for Fortran order) are contiguous byte
    # ranges of the file: one sequential read per chunk.
    if not shape or 0 in shape:
        return tuple(max(s, 1) for s in shape)
    slow = len(shape) - 1 if fortran else 0
    rest = int(np.prod(shape, dtype=np.int64)) // shape[slow]
    if rest * dtype.itemsize <= chunk_bytes_limit():
        spec: ChunkSpec = tuple("auto" if i == slow else -1 for i in range(len(shape)))
    else:
        spec = ("auto",) * len(shape)
    return first_chunks(spec, shape, dtype)


def open_tiff_source(path: str) -> Source:
    """The first series of a TIFF file; a multi-page file becomes a stack of planes."""
    try:
        with tifffile.TiffFile(path) as tf:
            series = tf.series[0]
            shape, dtype, axes = tuple(series.shape), series.dtype, series.axes
            page_ndim = min(len(series.keyframe.shape), len(shape))
    except _TIFF_ERRORS as exc:
        raise input_error(path, f"cannot read as TIFF: {exc}") from exc
    reader = _TiffReader(path, shape, np.dtype(dtype))
    return Source(
        kind="tiff",
        shape=shape,
        dtype=np.dtype(dtype),
        dims=_tiff_dims(axes),
        native_chunks=whole_planes(shape, page_ndim, np.dtype(dtype)),
        make=reader.as_dask,
    )


def _tiff_dims(axes: str) -> tuple[str, ...]:
    names = [_TIFF_AXES.get(a, a.lower()) for a in axes]
    # Two unknown axes would both be "plane": number the repeats.
    return tuple(
        n if names.count(n) == 1 else f"{n}_{names[:i].count(n)}" for i, n in enumerate(names)
    )


def open_images_source(pattern: str) -> Source:
    """Files matching a glob, naturally sorted (2 before 10), one image per plane."""
    files = tifffile.natural_sorted(f for f in glob.glob(pattern) if os.path.isfile(f))
    if not files:
        raise input_error(pattern, "pattern matches no files")
    if all(f.lower().endswith(_TIFF_SUFFIXES) for f in files):
        return _tiff_stack(pattern, files)
    return _other_images(pattern, files)


def _tiff_stack(pattern: str, files: list[str]) -> Source:
    # Headers of the first and last file only: opening every header of a
    # 100,000-file stack on a parallel file system takes minutes. Each task
    # checks the files it reads.
    infos = []
    for name in (files[0], files[-1]):
        try:
            with tifffile.TiffFile(name) as tf:
                s = tf.series[0]
                infos.append((tuple(s.shape), np.dtype(s.dtype), s.axes))
        except _TIFF_ERRORS as exc:
            raise input_error(pattern, f"cannot read {name} as TIFF: {exc}") from exc
    (shape, dtype, axes), (last_shape, last_dtype, _) = infos
    if (shape, dtype) != (last_shape, last_dtype):
        raise input_error(
            pattern,
            f"{files[-1]} holds {last_dtype}{list(last_shape)} but {files[0]} holds "
            f"{dtype}{list(shape)}; all images must match",
        )
    inner = _tiff_dims(axes)
    dims = ("plane", *inner) if "plane" not in inner else ("file", *inner)
    full = (len(files), *shape)
    reader = _TiffStackReader(pattern, files, full, dtype)
    return Source(
        kind="images",
        shape=full,
        dtype=dtype,
        dims=dims,
        native_chunks=whole_planes(full, len(shape), dtype),
        make=reader.as_dask,
    )


def _other_images(pattern: str, files: list[str]) -> Source:
    import dask_image.imread

    try:
        native = dask_image.imread.imread(pattern)
    # pims raises a different exception type per format plugin.
    except Exception as exc:
        raise input_error(pattern, f"cannot read the images: {exc}") from exc
    plane_dims = ("y", "x", "c")[: native.ndim - 1] if native.ndim <= 4 else None
    dims = ("plane", *plane_dims) if plane_dims else default_dims(native.ndim)

    if native.shape[0] == len(files):
        # One plane per file, read (and checked) by hpcscale, so that a file that
        # cannot be decoded is named in the error.
        reader = _ImageStackReader(pattern, files, tuple(native.shape), native.dtype)
        return Source(kind="images", shape=tuple(native.shape), dtype=native.dtype, dims=dims,
                      native_chunks=tuple(native.chunksize), make=reader.as_dask)

    def make(spec: ChunkSpec) -> da.Array:
        return native if spec == native.chunksize else cast(da.Array, native.rechunk(spec))

    return Source(
        kind="images",
        shape=tuple(native.shape),
        dtype=native.dtype,
        dims=dims,
        native_chunks=tuple(native.chunksize),
        make=make,
    )
