"""Inputs: every format opens lazily, with exact values, and changes nothing on disk."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr

from hpcscale.errors import InputError
from hpcscale.io.inputs import describe_input, open_input

RNG = np.random.default_rng(7)
CUBE = RNG.integers(0, 60_000, size=(4, 6, 5)).astype("u2")
FIELD = RNG.standard_normal((6, 8)).astype("f4")


# --- samples -----------------------------------------------------------------


def zarr_v2_array(tmp: Path) -> tuple[str, np.ndarray]:
    z = zarr.create_array(
        tmp / "a2.zarr", shape=FIELD.shape, chunks=(4, 3), dtype="f4", zarr_format=2
    )
    z[:] = FIELD
    return str(tmp / "a2.zarr"), FIELD


def zarr_v3_array(tmp: Path) -> tuple[str, np.ndarray]:
    z = zarr.create_array(
        tmp / "a3.zarr",
        shape=CUBE.shape,
        chunks=(1, 4, 5),
        dtype="u2",
        dimension_names=("t", "y", "x"),
    )
    z[:] = CUBE
    return str(tmp / "a3.zarr"), CUBE


def zarr_v3_group(tmp: Path) -> tuple[str, np.ndarray]:
    ds = xr.Dataset(
        {"temp": (("z", "y", "x"), CUBE, {"units": "K", "long_name": "temperature"})},
        coords={"z": [10.0, 20.0, 30.0, 40.0], "y": np.arange(6) * 0.5},
    )
    ds.to_zarr(
        tmp / "g3.zarr", zarr_format=3, consolidated=False, encoding={"temp": {"chunks": (2, 3, 5)}}
    )
    return str(tmp / "g3.zarr"), CUBE


def zarr_v2_group(tmp: Path) -> tuple[str, np.ndarray]:
    ds = xr.Dataset({"a": (("y", "x"), FIELD), "b": (("y", "x"), FIELD * 2)})
    ds.to_zarr(tmp / "g2.zarr", zarr_format=2)  # consolidated, as xarray does for v2
    return str(tmp / "g2.zarr"), FIELD * 2


def netcdf(tmp: Path) -> tuple[str, np.ndarray]:
    ds = xr.Dataset(
        {"temp": (("z", "y", "x"), CUBE, {"units": "K"}), "mask": (("y", "x"), CUBE[0] > 5)},
        coords={"z": [1.0, 2.0, 3.0, 4.0], "x": np.arange(5)},
    )
    ds.to_netcdf(tmp / "c.nc", engine="h5netcdf", encoding={"temp": {"chunksizes": (1, 3, 5)}})
    return str(tmp / "c.nc"), CUBE


def multipage_tiff(tmp: Path) -> tuple[str, np.ndarray]:
    tifffile.imwrite(tmp / "stack.tif", CUBE, photometric="minisblack")
    return str(tmp / "stack.tif"), CUBE


def tiff_glob(tmp: Path) -> tuple[str, np.ndarray]:
    (tmp / "planes").mkdir()
    for i, plane in enumerate(CUBE):
        tifffile.imwrite(tmp / "planes" / f"p{i * 5}.tif", plane)  # p0 p5 p10 p15
    return str(tmp / "planes" / "*.tif"), CUBE


def npy(tmp: Path) -> tuple[str, np.ndarray]:
    np.save(tmp / "f.npy", FIELD)
    return str(tmp / "f.npy"), FIELD


SAMPLES: dict[str, Callable[[Path], tuple[str, np.ndarray]]] = {
    "zarr-v2-array": zarr_v2_array,
    "zarr-v3-array": zarr_v3_array,
    "zarr-v3-group": zarr_v3_group,
    "zarr-v2-group": zarr_v2_group,
    "netcdf": netcdf,
    "tiff": multipage_tiff,
    "images": tiff_glob,
    "npy": npy,
}
VARS = {"netcdf": "temp", "zarr-v2-group": "b"}


def snapshot(root: Path) -> dict[str, tuple[bool, int, int]]:
    """Every entry under ``root``: (is dir, size, mtime in ns)."""
    out = {}
    for entry in sorted(root.rglob("*")):
        st = entry.stat()
        out[str(entry.relative_to(root))] = (entry.is_dir(), st.st_size, st.st_mtime_ns)
    return out


# --- every kind --------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_values_match_the_source_exactly(tmp_path: Path, kind: str) -> None:
    path, expected = SAMPLES[kind](tmp_path)
    arr = open_input(path, VARS.get(kind))
    assert arr.data.dtype == expected.dtype
    np.testing.assert_array_equal(arr.data.compute(), expected)
    assert len(arr.dims) == arr.data.ndim


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_opening_and_reading_changes_nothing(tmp_path: Path, kind: str) -> None:
    path, _ = SAMPLES[kind](tmp_path)
    before = snapshot(tmp_path)
    arr = open_input(path, VARS.get(kind))
    arr.data.compute()
    describe_input(path, VARS.get(kind))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_graph_pickles_for_workers(tmp_path: Path, kind: str) -> None:
    path, expected = SAMPLES[kind](tmp_path)
    data = open_input(path, VARS.get(kind)).data
    blob = pickle.dumps(data)
    # Readers carry paths, not pixels: the graph stays small.
    assert len(blob) < 20_000
    np.testing.assert_array_equal(pickle.loads(blob).compute(), expected)


# --- zarr --------------------------------------------------------------------


def test_zarr_v2_array_has_default_dims_and_store_chunks(tmp_path: Path) -> None:
    arr = open_input(zarr_v2_array(tmp_path)[0])
    assert (arr.kind, arr.dims, arr.var, arr.coords) == ("zarr", ("dim_0", "dim_1"), None, {})
    assert arr.data.chunks == ((4, 2), (3, 3, 2))


def test_zarr_v3_array_keeps_dimension_names(tmp_path: Path) -> None:
    arr = open_input(zarr_v3_array(tmp_path)[0])
    assert arr.dims == ("t", "y", "x")
    assert arr.data.chunksize == (1, 4, 5)


def test_xarray_group_brings_dims_coords_and_attrs(tmp_path: Path) -> None:
    arr = open_input(zarr_v3_group(tmp_path)[0])  # one data variable: no var needed
    assert (arr.var, arr.dims) == ("temp", ("z", "y", "x"))
    assert sorted(arr.coords) == ["y", "z"]
    np.testing.assert_array_equal(arr.coords["z"], [10.0, 20.0, 30.0, 40.0])
    np.testing.assert_array_equal(arr.coords["y"], np.arange(6) * 0.5)
    assert arr.attrs == {"units": "K", "long_name": "temperature"}
    assert arr.data.chunksize == (2, 3, 5)


def test_v2_group_with_several_arrays_and_chosen_var(tmp_path: Path) -> None:
    path, _ = zarr_v2_group(tmp_path)
    with pytest.raises(InputError, match=r"several arrays \(a, b\); choose one with --var"):
        open_input(path)
    arr = open_input(path, var="b")
    np.testing.assert_array_equal(arr.data.compute(), FIELD * 2)


def test_v2_integer_fill_value_is_not_a_missing_value(tmp_path: Path) -> None:
    # xarray.open_zarr would turn every 0 into NaN here (pydata/xarray#10269).
    g = zarr.open_group(tmp_path / "i.zarr", mode="w", zarr_format=2)
    z = g.create_array("counts", shape=(3, 4), chunks=(3, 2), dtype="i4")
    z.attrs["_ARRAY_DIMENSIONS"] = ["y", "x"]
    values = np.array([[0, 1, 2, 0], [3, 0, 4, 5], [0, 0, 6, 7]], dtype="i4")
    z[:] = values
    arr = open_input(tmp_path / "i.zarr")
    assert arr.dims == ("y", "x")
    assert arr.data.dtype == np.int32
    np.testing.assert_array_equal(arr.data.compute(), values)


def test_sharded_input_reads_one_task_per_shard(tmp_path: Path) -> None:
    z = zarr.create_array(
        tmp_path / "s.zarr", shape=(8, 8), chunks=(2, 2), shards=(4, 8), dtype="f4"
    )
    z[:] = FIELD[:, :8].repeat(2, axis=0)[:8]
    arr = open_input(tmp_path / "s.zarr")
    assert arr.data.chunksize == (4, 8)
    np.testing.assert_array_equal(arr.data.compute(), z[...])


def test_group_without_dimension_names_takes_coords_from_siblings(tmp_path: Path) -> None:
    g = zarr.open_group(tmp_path / "m.zarr", mode="w")
    data = g.create_array("data", shape=(6, 8), chunks=(3, 8), dtype="f4", dimension_names="yx")
    data[:] = FIELD
    y = g.create_array("y", shape=(6,), chunks=(6,), dtype="f8", dimension_names=("y",))
    y[:] = np.arange(6.0)
    g.create_array("raw", shape=(2,), chunks=(2,), dtype="i2")  # no names: not for xarray
    arr = open_input(tmp_path / "m.zarr", var="data")
    assert arr.dims == ("y", "x")
    np.testing.assert_array_equal(arr.coords["y"], np.arange(6.0))
    np.testing.assert_array_equal(arr.data.compute(), FIELD)


def test_nested_array_by_path(tmp_path: Path) -> None:
    g = zarr.open_group(tmp_path / "n.zarr", mode="w")
    g.create_group("level1").create_array("v", shape=(6, 8), chunks=(6, 8), dtype="f4")[:] = FIELD
    with pytest.raises(
        InputError, match=r"no array at its top level; choose one with --var \(level1/v\)"
    ):
        open_input(tmp_path / "n.zarr")
    np.testing.assert_array_equal(open_input(tmp_path / "n.zarr", "level1/v").data.compute(), FIELD)


# --- netcdf / hdf5 -----------------------------------------------------------


def test_netcdf_dims_coords_and_file_chunking(tmp_path: Path) -> None:
    path, _ = netcdf(tmp_path)
    with dask.config.set({"array.chunk-size": "100B"}):  # force chunks near the file's
        arr = open_input(path, "temp")
    assert (arr.kind, arr.dims, arr.attrs) == ("netcdf", ("z", "y", "x"), {"units": "K"})
    assert sorted(arr.coords) == ["x", "z"]
    # Every dask chunk is whole file chunks (1, 3, 5).
    for axis, file_chunk in zip(arr.data.chunks, (1, 3, 5), strict=True):
        assert all(c % file_chunk == 0 for c in axis[:-1])
    np.testing.assert_array_equal(arr.data.compute(), CUBE)


def test_netcdf_classic_format(tmp_path: Path) -> None:
    xr.Dataset({"v": (("y", "x"), FIELD)}).to_netcdf(tmp_path / "c3.nc", engine="scipy")
    arr = open_input(tmp_path / "c3.nc")
    assert (arr.kind, arr.dims) == ("netcdf", ("y", "x"))
    np.testing.assert_array_equal(arr.data.compute(), FIELD)


def test_plain_hdf5_dataset_gets_phony_dims(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "p.h5", "w") as f:
        f.create_dataset("img", data=FIELD, chunks=(2, 8))
    arr = open_input(tmp_path / "p.h5")
    assert arr.dims == ("phony_dim_0", "phony_dim_1")
    np.testing.assert_array_equal(arr.data.compute(), FIELD)


# --- tiff, images, npy -------------------------------------------------------


def test_multipage_tiff_is_a_stack_of_planes(tmp_path: Path) -> None:
    arr = open_input(multipage_tiff(tmp_path)[0])
    assert (arr.kind, arr.dims, arr.data.chunksize) == ("tiff", ("plane", "y", "x"), (1, 6, 5))


def test_imagej_tiff_axes_become_dims(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "ij.tif", CUBE, imagej=True, metadata={"axes": "ZYX"})
    arr = open_input(tmp_path / "ij.tif")
    assert arr.dims == ("z", "y", "x")
    np.testing.assert_array_equal(arr.data[1:3].compute(), CUBE[1:3])


def test_glob_is_sorted_naturally_one_plane_per_file(tmp_path: Path) -> None:
    arr = open_input(tiff_glob(tmp_path)[0])  # p10 after p5, not after p0
    assert (arr.kind, arr.dims, arr.data.chunksize) == ("images", ("plane", "y", "x"), (1, 6, 5))
    np.testing.assert_array_equal(arr.data[2].compute(), CUBE[2])


def test_glob_of_pngs(tmp_path: Path) -> None:
    iio = pytest.importorskip("imageio.v3")
    for i in range(3):
        iio.imwrite(tmp_path / f"im{i}.png", CUBE[i].astype("u1"))
    arr = open_input(tmp_path / "im*.png")
    assert arr.dims == ("plane", "y", "x")
    np.testing.assert_array_equal(arr.data.compute(), CUBE[:3].astype("u1"))


def test_glob_with_a_mismatched_image(tmp_path: Path) -> None:
    tiff_glob(tmp_path)
    tifffile.imwrite(tmp_path / "planes" / "p7.tif", np.zeros((2, 2), "u2"))  # in the middle
    arr = open_input(tmp_path / "planes" / "*.tif")  # first and last agree
    with pytest.raises(InputError, match=r"p7.tif holds uint16\[2, 2\] but .*p0.tif holds"):
        arr.data.compute()
    tifffile.imwrite(tmp_path / "planes" / "p99.tif", np.zeros((6, 5), "f4"))
    with pytest.raises(InputError, match=r"p99.tif holds float32\[6, 5\] .* all images must match"):
        open_input(tmp_path / "planes" / "*.tif")


def test_npy_slabs_and_fortran_order(tmp_path: Path) -> None:
    np.save(tmp_path / "c.npy", FIELD)
    np.save(tmp_path / "f.npy", np.asfortranarray(FIELD))
    with dask.config.set({"array.chunk-size": "64B"}):
        c = open_input(tmp_path / "c.npy")
        f = open_input(tmp_path / "f.npy")
    assert c.data.chunksize == (2, 8)  # whole rows: contiguous in the file
    assert f.data.chunksize == (6, 2)  # whole columns
    np.testing.assert_array_equal(f.data.compute(), FIELD)


def test_chunks_override_by_dim_name_and_tuple(tmp_path: Path) -> None:
    path, _ = zarr_v3_group(tmp_path)
    assert open_input(path, chunks={"y": -1}).data.chunksize == (2, 6, 5)
    assert open_input(path, chunks=(4, 2, "auto")).data.chunks[:2] == ((4,), (2, 2, 2))
    np.testing.assert_array_equal(open_input(path, chunks=1).data.compute(), CUBE)


def test_describe_input(tmp_path: Path) -> None:
    path, _ = zarr_v3_group(tmp_path)
    assert describe_input(path) == {
        "path": path,
        "kind": "zarr",
        "var": "temp",
        "dims": ["z", "y", "x"],
        "shape": [4, 6, 5],
        "dtype": "uint16",
        "chunks": [2, 3, 5],
        "nchunks": 4,
        "nbytes": CUBE.nbytes,
        "coords": ["y", "z"],
        "units": "K",
    }


# --- user mistakes: one line, naming path and what is allowed ----------------


def _broken(tmp: Path, kind: str) -> str:
    if kind == "zarr":
        (tmp / "bad.zarr").mkdir()
        (tmp / "bad.zarr" / "zarr.json").write_text("{not json")
        return str(tmp / "bad.zarr")
    if kind == "tiff":
        (tmp / "bad.tif").write_bytes(b"II*\x00" + b"\xff" * 20)
        return str(tmp / "bad.tif")
    np.save(tmp / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return str(tmp / "obj.npy")


def _text_file(tmp: Path) -> str:
    (tmp / "notes.txt").write_text("hello")
    return str(tmp / "notes.txt")


def _plain_dir(tmp: Path) -> str:
    (tmp / "imgs").mkdir()
    return str(tmp / "imgs")


def _path_of(factory: Callable[[Path], tuple[str, np.ndarray]]) -> Callable[[Path], str]:
    return lambda tmp: factory(tmp)[0]


def _missing(tmp: Path) -> str:
    return str(tmp / "data" / "x.zarr")


def _no_match(tmp: Path) -> str:
    return str(tmp / "*.tif")


GROUP, NC, NPY, ARRAY = (_path_of(f) for f in (zarr_v3_group, netcdf, npy, zarr_v2_array))
ERRORS = [
    pytest.param(_missing, None, None, r"x.zarr: no such file or directory$", id="missing"),
    pytest.param(_no_match, None, None, r"\*.tif: pattern matches no files", id="glob"),
    pytest.param(_text_file, None, None, r"unknown format; expected a Zarr", id="format"),
    pytest.param(_plain_dir, None, None, r"not a Zarr store .* such as '.*imgs/\*.tif'", id="dir"),
    pytest.param(GROUP, "tmep", None, r"no array 'tmep' in the group; available: temp, y, z"),
    pytest.param(NC, "tmep", None, r"no variable 'tmep'; available: mask, temp"),
    pytest.param(NC, None, None, r"several variables \(mask, temp\); choose one with --var"),
    pytest.param(NPY, "a", None, r"--var a applies only to Zarr groups and NetCDF"),
    pytest.param(ARRAY, "a", None, r"single Zarr array, not a group; drop --var"),
    pytest.param(NPY, None, {"q": 2}, r"chunks name unknown dims \(q\); the array has dims"),
    pytest.param(NPY, None, (2,), r"chunks \[2\] has 1 entries; the array has 2 dims"),
    pytest.param(NPY, None, 0, r"chunks has 0; each length must be a positive integer"),
    pytest.param(lambda t: _broken(t, "zarr"), None, None, r"bad.zarr: cannot read as Zarr"),
    pytest.param(lambda t: _broken(t, "tiff"), None, None, r"bad.tif: cannot read as TIFF"),
    pytest.param(lambda t: _broken(t, "npy"), None, None, r"obj.npy: cannot read as .npy"),
]


@pytest.mark.parametrize(("make", "var", "chunks", "message"), ERRORS)
def test_user_mistakes_are_one_line_input_errors(
    tmp_path: Path, make: Callable[[Path], str], var: str | None, chunks: Any, message: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as info:
        open_input(path, var, chunks)
    text = str(info.value)
    assert text.startswith(f"input {path}: ")
    assert "\n" not in text
    assert info.value.exit_code == 2


def test_error_keeps_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match=r"^input data/x.zarr: no such file or directory$"):
        open_input("data/x.zarr")
    assert os.listdir(tmp_path) == []
