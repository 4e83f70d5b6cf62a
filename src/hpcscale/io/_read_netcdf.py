"""NetCDF (4 and classic) and HDF5 inputs through xarray, read lazily."""

from __future__ import annotations

from typing import Any

import xarray as xr

from hpcscale.io._source import ReadGuard, Source, first_chunks, input_error, xarray_source

_READ_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError)


def open_netcdf_source(path: str, var: str | None, engine: str) -> Source:
    """Open variable ``var`` (``group/name`` inside HDF5 groups) of the file at ``path``.

    ``engine`` is "h5netcdf" for NetCDF4/HDF5 and "scipy" for classic NetCDF.
    Values are CF-decoded as xarray does (scale_factor, add_offset, _FillValue).
    """
    group, _, name = (var or "").strip("/").rpartition("/")
    # HDF5 datasets without dimension scales get netCDF-C's phony_dim_N names
    # instead of an error.
    options: dict[str, Any] = {"phony_dims": "sort"} if engine == "h5netcdf" else {}
    try:
        ds = xr.open_dataset(path, engine=engine, chunks=None, group=group or None, **options)
    except ImportError as exc:
        raise input_error(path, f"reading NetCDF4/HDF5 needs h5py installed ({exc})") from exc
    except _READ_ERRORS as exc:
        where = f" group {group!r}" if group else ""
        raise input_error(path, f"cannot read{where} as NetCDF/HDF5: {exc}") from exc
    available = sorted(str(k) for k in ds.data_vars)
    if var is None:
        if len(available) == 1:
            name = available[0]
        elif available:
            names = ", ".join(available)
            raise input_error(path, f"file has several variables ({names}); choose one with --var")
        else:
            raise input_error(path, "file holds no data variables")
    elif name not in ds.variables:
        listed = ", ".join(available) or "none"
        raise input_error(path, f"no variable {var!r}; available: {listed}")
    variable = ds[name]
    return xarray_source("netcdf", variable, _chunks(variable), var or name,
                         guard=ReadGuard(path))


def _chunks(variable: xr.DataArray) -> tuple[int, ...]:
    """Whole multiples of the file's chunks up to dask's chunk-size; auto if contiguous."""
    # HDF5 chunks are often a few KiB; one dask task per file chunk would make
    # graphs of millions of tasks, so tasks read several neighbouring chunks.
    file_chunks = variable.encoding.get("chunksizes")
    previous = tuple(file_chunks) if file_chunks else None
    shape = tuple(variable.shape)
    if 0 in shape:
        return tuple(max(s, 1) for s in shape)
    return first_chunks("auto", shape, variable.dtype, previous)
