"""Zarr v2 and v3 inputs (arrays and groups), opened read-only.

A group whose arrays all carry dimension names (``dimension_names`` in v3,
``_ARRAY_DIMENSIONS`` in v2: what xarray writes) is opened through xarray, so
dimension names, coordinates and CF attributes (scale_factor, add_offset, a
``_FillValue`` attribute) come along exactly as ``xarray.open_zarr`` shows
them. Anything else is read with zarr directly, values as stored.
"""

from __future__ import annotations

import contextlib
import itertools
from pathlib import Path
from typing import Any, cast

import dask.array as da
import numpy as np
import xarray as xr
import zarr
import zarr.errors
from xarray.backends import ZarrStore
from zarr.storage import LocalStore

from hpcscale.io._source import (
    ChunkSpec,
    ReadGuard,
    Source,
    default_dims,
    input_error,
    xarray_source,
)

# Listing every array of a huge hierarchy in an error message helps nobody.
_MAX_LISTED = 20

_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, zarr.errors.BaseZarrError)


def open_zarr_source(path: str, var: str | None) -> Source:
    """Open the Zarr array or group at ``path``; ``var`` picks an array in a group."""
    try:
        node = zarr.open(store=LocalStore(path, read_only=True), mode="r")
    except _READ_ERRORS as exc:
        raise input_error(path, f"cannot read as Zarr: {exc}") from exc
    if isinstance(node, zarr.Array):
        if var is not None:
            raise input_error(path, f"is a single Zarr array, not a group; drop --var {var}")
        return _raw_source(path, node, None, None)
    parent, parent_path, name = _choose(path, node, var)
    arrays = dict(parent.arrays())
    chosen = arrays[name]
    label = f"{parent_path}/{name}" if parent_path else name
    if all(dim_names(a) is not None for a in arrays.values()):
        if parent_path:
            consolidated = False
        elif node.metadata.zarr_format == 3:
            consolidated = node.metadata.consolidated_metadata is not None
        else:
            consolidated = (Path(path) / ".zmetadata").is_file()
        return _xarray_source(
            path, parent_path, name, label=label, arr=chosen, consolidated=consolidated
        )
    return _raw_source(path, chosen, parent, label)


def dim_names(arr: zarr.Array[Any]) -> tuple[str, ...] | None:
    """The array's dimension names (v3 metadata or v2 ``_ARRAY_DIMENSIONS``), or None."""
    if arr.metadata.zarr_format == 3:
        names: Any = arr.metadata.dimension_names
    else:
        names = arr.attrs.get("_ARRAY_DIMENSIONS")
    if not isinstance(names, list | tuple) or len(names) != arr.ndim:
        return None
    if not all(isinstance(n, str) for n in names):
        return None
    return tuple(names)


def native_chunks(arr: zarr.Array[Any]) -> tuple[int, ...]:
    """The store's write unit: the shard shape when sharded, else the chunk shape."""
    # Reading whole shards keeps one task per shard file instead of one per
    # inner chunk, which would reopen the same shard many times.
    return tuple(arr.shards or arr.chunks)


def _choose(path: str, root: zarr.Group, var: str | None) -> tuple[zarr.Group, str, str]:
    """(parent group, its path in ``root``, array name) for ``var`` or the only data array."""
    if var is not None:
        parent_path, _, name = var.strip("/").rpartition("/")
        try:
            parent = root[parent_path] if parent_path else root
        except KeyError:
            parent = None
        if not isinstance(parent, zarr.Group) or name not in dict(parent.arrays()):
            raise input_error(path, f"no array {var!r} in the group; available: {_listing(root)}")
        return parent, parent_path, name
    arrays = dict(root.arrays())
    candidates = [n for n in arrays if not _is_coordinate(n, arrays)]
    if len(candidates) == 1:
        return root, "", candidates[0]
    if candidates:
        names = ", ".join(sorted(candidates))
        raise input_error(path, f"group has several arrays ({names}); choose one with --var")
    if _all_arrays(root):
        raise input_error(
            path, f"group has no array at its top level; choose one with --var ({_listing(root)})"
        )
    raise input_error(path, "Zarr group holds no arrays")


def _is_coordinate(name: str, arrays: dict[str, zarr.Array[Any]]) -> bool:
    """True for a dimension coordinate or a CF ``coordinates`` entry of another array."""
    if len(arrays) > 1 and dim_names(arrays[name]) == (name,):
        return True
    for other in arrays.values():
        listed = other.attrs.get("coordinates")
        if isinstance(listed, str) and name in listed.split():
            return True
    return False


def _all_arrays(root: zarr.Group) -> list[str]:
    return sorted(key for key, node in root.members(max_depth=None) if isinstance(node, zarr.Array))


def _listing(root: zarr.Group) -> str:
    names = _all_arrays(root)
    if not names:
        return "none"
    more = f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else ""
    return ", ".join(names[:_MAX_LISTED]) + more


def _xarray_source(
    path: str,
    parent_path: str,
    name: str,
    *,
    label: str,
    arr: zarr.Array[Any],
    consolidated: bool,
) -> Source:
    # xarray's open_zarr ignores use_zarr_fill_value_as_mask (pydata/xarray#10269)
    # and, for v2, treats the array's fill_value as a missing-value marker: an
    # integer array written by zarr with the default fill_value 0 comes back as
    # floats with NaN for every 0. Passing our own store applies xarray's v3 rule
    # to both formats: only an explicit _FillValue attribute masks values.
    try:
        store = ZarrStore.open_group(
            LocalStore(path, read_only=True),
            group=parent_path or None,
            mode="r",
            consolidated=consolidated,
            use_zarr_fill_value_as_mask=False,
        )
        ds = xr.open_dataset(path, engine="zarr", store=store, chunks=None)
        variable = ds[name]
    except _READ_ERRORS as exc:
        raise input_error(path, f"cannot read array {label} with xarray: {exc}") from exc
    return xarray_source("zarr", variable, native_chunks(arr), label,
                         guard=ZarrGuard(path, arr.path))


def _raw_source(
    path: str, arr: zarr.Array[Any], parent: zarr.Group | None, label: str | None
) -> Source:
    names = dim_names(arr)
    dims = names if names is not None else default_dims(arr.ndim)
    coords: dict[str, np.ndarray[Any, Any]] = {}
    if parent is not None and names is not None:
        siblings = dict(parent.arrays())
        for axis, d in enumerate(dims):
            coord = siblings.get(d)
            if coord is not None and coord.ndim == 1 and coord.shape[0] == arr.shape[axis]:
                coords[d] = np.asarray(coord[...])
    attrs = {k: v for k, v in arr.attrs.asdict().items() if k != "_ARRAY_DIMENSIONS"}

    def make(spec: ChunkSpec) -> da.Array:
        data = da.from_array(arr, chunks=spec, getitem=ZarrGuard(path, arr.path))  # type: ignore[no-untyped-call]
        return cast(da.Array, data)

    return Source(
        kind="zarr",
        shape=tuple(arr.shape),
        dtype=np.dtype(arr.dtype),
        dims=dims,
        native_chunks=native_chunks(arr),
        make=make,
        coords=coords,
        attrs=attrs,
        var=label,
    )


class ZarrGuard(ReadGuard):
    """Names the stored chunk (or shard) of a block that cannot be read: its key in the store."""

    def __init__(self, path: str, array: str) -> None:
        super().__init__(path)
        self.array = array

    def where(self, key: Any) -> str:
        # Only after a failure: read the block's chunks one by one to find the bad one.
        with contextlib.suppress(Exception):  # else the block's ranges say where
            arr = zarr.open_array(LocalStore(self.path, read_only=True), path=self.array,
                                  mode="r")
            grid = tuple(arr.shards or arr.chunks)
            spans = []
            for k, g, n in zip(key, grid, arr.shape, strict=False):
                start, stop, _ = k.indices(n) if isinstance(k, slice) else (k, k + 1, 1)
                spans.append(range(start // g, max(stop - 1, start) // g + 1))
            for index in itertools.product(*spans):
                region = tuple(slice(i * g, min((i + 1) * g, n))
                               for i, g, n in zip(index, grid, arr.shape, strict=True))
                try:
                    arr[region]
                except Exception:
                    name = arr.metadata.encode_chunk_key(index)
                    return f"chunk {self.array}/{name}" if self.array else f"chunk {name}"
        return super().where(key)

    def __dask_tokenize__(self) -> object:
        return (type(self).__name__, self.path, self.array)
