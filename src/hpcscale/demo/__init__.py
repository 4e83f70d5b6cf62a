"""Small sample datasets hpcscale generates itself, for the demo and the docs.

``climate.zarr``: a (time, lat, lon) float32 temperature field with
coordinates and units; ``cells.zarr``: a (z, y, x) uint16 microscopy-like
stack of blurred blobs with noise. Deterministic (fixed seed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hpcscale.config import jobspec


def climate(path: Path, shape: tuple[int, int, int] = (48, 90, 180),
            chunks: tuple[int, int, int] = (12, 45, 90)) -> Path:
    import xarray as xr

    nt, ny, nx = shape
    rng = np.random.default_rng(42)
    lat = np.linspace(-89.0, 89.0, ny)
    lon = np.linspace(0.0, 358.0, nx)
    time = np.arange(nt)
    seasonal = 10 * np.sin(2 * np.pi * time / 365)[:, None, None]
    base = 30 * np.cos(np.deg2rad(lat))[None, :, None] - 5
    temp = (base + seasonal + rng.normal(0, 2, shape)).astype("float32")
    ds = xr.Dataset(
        {"temperature": (("time", "lat", "lon"), temp,
                         {"units": "degC", "long_name": "air temperature"})},
        coords={"time": ("time", time, {"units": "days since 2000-01-01", "calendar": "standard"}),
                "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})},
        attrs={"title": "hpcscale sample climate grid"},
    )
    encoding = {"temperature": {"chunks": chunks}}
    ds.to_zarr(path, mode="w", zarr_format=3, encoding=encoding, consolidated=False)
    return path


def cells(path: Path, shape: tuple[int, int, int] = (16, 256, 256),
          chunks: tuple[int, int, int] = (4, 128, 128)) -> Path:
    import xarray as xr
    from scipy import ndimage

    rng = np.random.default_rng(7)
    stack = np.zeros(shape, dtype="float32")
    for _ in range(60):
        z, y, x = (rng.integers(0, s) for s in shape)
        stack[z, y, x] = rng.uniform(2000, 6000)
    stack = ndimage.gaussian_filter(stack, sigma=(1.5, 4, 4)) * 40
    stack += rng.normal(200, 20, shape)
    data = np.clip(stack, 0, 65535).astype("uint16")
    ds = xr.Dataset({"cells": (("z", "y", "x"), data, {"units": "counts"})},
                    attrs={"title": "hpcscale sample microscopy stack"})
    ds.to_zarr(path, mode="w", zarr_format=3, encoding={"cells": {"chunks": chunks}},
               consolidated=False)
    return path


def make_all(directory: Path) -> list[Path]:
    """Create the sample inputs in ``directory`` unless they are already there."""
    (directory / "results").mkdir(parents=True, exist_ok=True)
    made = []
    for name, fn in (("climate.zarr", climate), ("cells.zarr", cells)):
        path = directory / name
        if not path.exists():
            fn(path)
        made.append(path)
    return made


def demo_specs(directory: Path) -> list[jobspec.JobSpec]:
    """The demo's two runs: a reduction and a filter."""
    d = str(directory)
    return [
        jobspec.parse({
            "description": "mean temperature over time",
            "input": {"path": f"{d}/climate.zarr", "var": "temperature"},
            "steps": [{"reduce": "mean", "axis": ["time"]}],
            "output": {"path": f"{d}/results/climate-mean-time.zarr", "overwrite": True},
        }, "<demo>"),
        jobspec.parse({
            "description": "gaussian filter (sigma 2 in y and x) of the cell stack",
            "input": {"path": f"{d}/cells.zarr", "var": "cells"},
            "steps": [{"filter": "gaussian", "sigma": 2.0, "axes": ["y", "x"]}],
            "output": {"path": f"{d}/results/cells-gaussian.zarr", "overwrite": True},
        }, "<demo>"),
    ]
