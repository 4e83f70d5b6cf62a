"""A representative subset of the operations on the SLURM testbed with several jobs,
each compared with numpy/scipy on the whole array."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from helpers import Cli

pytestmark = pytest.mark.slurm


@pytest.fixture
def stack(tmp_path: Path) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(3)
    data = rng.normal(100, 20, (12, 45, 38)).astype("float32")
    data[rng.random(data.shape) < 0.01] = np.nan
    path = tmp_path / "stack.zarr"
    xr.Dataset({"img": (("z", "y", "x"), data)},
               coords={"z": np.arange(12) * 0.5}).to_zarr(
        path, zarr_format=3, encoding={"img": {"chunks": (4, 20, 16)}}, consolidated=False)
    return path, data


def _clean_copy(tmp_path: Path, data: np.ndarray) -> tuple[Path, np.ndarray]:
    """The stack without NaNs (a NaN spreads through any filter's whole reach)."""
    clean = np.nan_to_num(data, nan=0.0)
    path = tmp_path / "clean.zarr"
    xr.Dataset({"img": (("z", "y", "x"), clean)}).to_zarr(
        path, zarr_format=3, encoding={"img": {"chunks": (4, 20, 16)}}, consolidated=False)
    return path, clean


def _submit(cli: Cli, tmp_path: Path, inp: Path, steps: str, name: str) -> xr.DataArray:
    out = tmp_path / f"{name}.zarr"
    spec = tmp_path / f"{name}.toml"
    spec.write_text(f'[input]\npath = "{inp}"\nvar = "img"\n{steps}\n[output]\npath = "{out}"\n')
    r = cli("--json", "submit", str(spec), "--site", "testbed", "--jobs", "3")
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert summary["workers"] == 3, summary
    return xr.open_zarr(out)["img"]


def test_reduction_nanmean_over_two_axes(testbed: Path, cli: Cli, stack, tmp_path: Path) -> None:
    inp, data = stack
    got = _submit(cli, tmp_path, inp, '[[steps]]\nreduce = "nanmean"\naxis = ["y", "x"]', "nm")
    assert got.dims == ("z",)
    np.testing.assert_allclose(got.values, np.nanmean(data.astype("float64"), axis=(1, 2)),
                               rtol=1e-6)
    np.testing.assert_array_equal(got["z"].values, np.arange(12) * 0.5)


def test_filter_gaussian_wrap_anisotropic(testbed: Path, cli: Cli, stack, tmp_path: Path) -> None:
    path, clean = _clean_copy(tmp_path, stack[1])
    got = _submit(cli, tmp_path, path,
                  '[[steps]]\nfilter = "gaussian"\nsigma = [1.0, 3.0, 2.0]\nmode = "wrap"', "g")
    want = ndimage.gaussian_filter(clean, sigma=(1.0, 3.0, 2.0), mode="wrap")
    np.testing.assert_allclose(got.values, want, rtol=1e-5, atol=1e-4)


def test_pipeline_median_then_max_projection(
    testbed: Path, cli: Cli, stack, tmp_path: Path
) -> None:
    path, clean = _clean_copy(tmp_path, stack[1])
    got = _submit(cli, tmp_path, path, '[[steps]]\nfilter = "median"\nsize = 3\n'
                  '[[steps]]\nreduce = "max"\naxis = ["z"]', "p")
    want = ndimage.median_filter(clean, size=3).max(axis=0)
    np.testing.assert_array_equal(got.values, want)


def test_histogram_per_z_slice(testbed: Path, cli: Cli, stack, tmp_path: Path) -> None:
    inp, data = stack
    got = _submit(cli, tmp_path, inp, '[[steps]]\nhistogram = 16\nrange = [40.0, 160.0]\n'
                  'axis = ["y", "x"]', "h")
    assert got.dims == ("z", "bin")
    for z in range(data.shape[0]):
        counts, edges = np.histogram(data[z], bins=16, range=(40.0, 160.0))
        np.testing.assert_array_equal(got.values[z], counts)
    np.testing.assert_allclose(got["bin"].values, (edges[:-1] + edges[1:]) / 2)
    np.testing.assert_allclose(got["bin_lower"].values, edges[:-1])
    np.testing.assert_allclose(got["bin_upper"].values, edges[1:])
