"""hpcscale preview: what it selects equals numpy, the PNGs are real, mistakes are one line.

The screenshots in docs/images/preview-*.png are made by the commands shown in
docs/preview.md; after changing the command, make them again with
``.venv/bin/python tests/unit/preview/test_preview.py --write-screenshots``.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from scipy import ndimage

from helpers import CliResult
from hpcscale import demo as sample
from hpcscale.errors import UsageError
from hpcscale.io.inputs import InputArray, open_input
from hpcscale.preview import default_output, parse_slices, preview, select

REPO = Path(__file__).resolve().parents[3]
PAGE = REPO / "docs" / "preview.md"
IMAGES = REPO / "docs" / "images"

Cli = Callable[..., CliResult]


# -- data -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo inputs, and what jobs/cells-gaussian.toml makes of the cells (same values)."""
    root = tmp_path_factory.mktemp("preview-demo")
    demo = root / "hpcscale-demo"
    sample.make_all(demo)
    cells = xr.open_zarr(demo / "cells.zarr", consolidated=False)["cells"]
    smooth = ndimage.gaussian_filter(cells.values, sigma=(1, 2, 2))
    xr.Dataset({"cells": (cells.dims, smooth, cells.attrs)}).to_zarr(
        demo / "results" / "cells-gaussian-3d.zarr", zarr_format=3, consolidated=False)
    return demo


def _temperature(demo: Path) -> np.ndarray:
    return xr.open_zarr(demo / "climate.zarr", consolidated=False)["temperature"].values


def _cells(demo: Path) -> np.ndarray:
    return xr.open_zarr(demo / "cells.zarr", consolidated=False)["cells"].values


def _array(values: np.ndarray, dims: tuple[str, ...], chunks: Any = -1,
           coords: dict[str, np.ndarray] | None = None, units: str | None = None) -> InputArray:
    return InputArray(data=da.from_array(values, chunks=chunks), dims=dims, coords=coords or {},
                      attrs={"units": units} if units else {}, path="mem.zarr", var="v",
                      kind="zarr")


def png(path: Path) -> tuple[int, int]:
    """The PNG's pixel size; fails unless it is a real picture, not one flat colour."""
    with Image.open(path) as image:
        assert image.format == "PNG"
        size = image.size
        pixels = np.asarray(image.convert("RGB")).astype(np.uint32)
    colours = (pixels[..., 0] << 16) | (pixels[..., 1] << 8) | pixels[..., 2]
    assert len(np.unique(colours)) > 20, f"{path} is blank"
    return size


# -- selection equals numpy -----------------------------------------------------------------------


def test_slice_equals_numpy_with_labels(demo: Path) -> None:
    t = _temperature(demo)
    plane = select(open_input(demo / "climate.zarr"), {"time": 5})
    np.testing.assert_array_equal(plane.values, t[5])
    assert plane.dims == ("lat", "lon")
    assert plane.axis_labels == ("lat [degrees_north]", "lon [degrees_east]")
    assert plane.value_label == "temperature [degC]"
    assert plane.title == "climate.zarr: temperature, time=5 (2000-01-06)"
    assert plane.selection == {"time": 5}
    np.testing.assert_array_equal(plane.coords["lat"], np.linspace(-89.0, 89.0, 90))


@pytest.mark.parametrize(("slices", "max_dims", "expected", "dims"), [
    ({}, [], lambda c: c[8], ("y", "x")),
    ({"z": -1}, [], lambda c: c[-1], ("y", "x")),
    ({}, ["z"], lambda c: c.max(axis=0), ("y", "x")),
    ({}, ["y"], lambda c: c.max(axis=1), ("z", "x")),
    ({"y": 100}, ["x"], lambda c: c[:, 100, :].max(axis=1), ("z",)),
    ({"z": 3, "y": 7, "x": 9}, [], lambda c: c[3, 7, 9], ()),
    ({}, ["z", "y", "x"], lambda c: c.max(), ()),
], ids=["default", "last", "max-z", "max-y", "line", "value", "max-all"])
def test_cells_selection_equals_numpy(demo: Path, slices: dict[str, int], max_dims: list[str],
                                      expected: Callable[[np.ndarray], Any],
                                      dims: tuple[str, ...]) -> None:
    plane = select(open_input(demo / "cells.zarr"), slices, max_dims)
    np.testing.assert_array_equal(plane.values, expected(_cells(demo)))
    assert plane.dims == dims


def _reference(a: np.ndarray, dims: tuple[str, ...], slices: dict[str, int],
               max_dims: list[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    rest = [d for d in dims if d not in slices and d not in max_dims]
    where = tuple(slices[d] if d in slices else a.shape[i] // 2 if d in rest[:-2] else slice(None)
                  for i, d in enumerate(dims))
    kept = [d for d, w in zip(dims, where, strict=True) if isinstance(w, slice)]
    out = a[where]
    if max_dims:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            out = np.nanmax(out, axis=tuple(kept.index(d) for d in max_dims))
    return out, tuple(d for d in kept if d not in max_dims)


@st.composite
def _cases(draw: st.DrawFn) -> tuple[np.ndarray, tuple[str, ...], Any, dict[str, int], list[str]]:
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=4)))
    dims = tuple(f"d{i}" for i in range(len(shape)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = rng.normal(size=shape).astype(np.float32)
    a[rng.random(shape) < 0.2] = np.nan
    slices: dict[str, int] = {}
    max_dims: list[str] = []
    for d, n in zip(dims, shape, strict=True):
        what = draw(st.sampled_from(["free", "slice", "max"]))
        if what == "slice":
            slices[d] = draw(st.integers(-n, n - 1))
        elif what == "max":
            max_dims.append(d)
    return a, dims, chunks, slices, max_dims


@settings(max_examples=60, deadline=None)
@given(_cases())
def test_any_selection_equals_numpy(case: tuple[np.ndarray, tuple[str, ...], Any,
                                                dict[str, int], list[str]]) -> None:
    a, dims, chunks, slices, max_dims = case
    plane = select(_array(a, dims, chunks), slices, max_dims)
    expected, shown = _reference(a, dims, slices, max_dims)
    np.testing.assert_array_equal(plane.values, expected)
    assert plane.dims == shown
    assert len(shown) <= 2


def test_long_dims_are_thinned_with_their_coordinates() -> None:
    a = np.arange(10 * 3).reshape(10, 3)
    lat = np.linspace(0, 9, 10)
    plane = select(_array(a, ("lat", "x"), 4, {"lat": lat}), max_pixels=4)
    assert plane.steps == (3, 1)
    np.testing.assert_array_equal(plane.values, a[::3])
    np.testing.assert_array_equal(plane.coords["lat"], lat[::3])
    assert plane.shape == (10, 3)
    assert plane.title.endswith("every 3rd value along lat")


def test_a_gibibyte_array_reads_only_the_chunks_shown() -> None:
    read: list[tuple[int, ...]] = []

    def block(block_id: tuple[int, ...]) -> np.ndarray:
        read.append(block_id)
        return np.full((1, 512, 512), block_id[0], dtype=np.float32)

    data = da.map_blocks(block, chunks=((1,) * 1024, (512,), (512,)), dtype=np.float32,
                         meta=np.array((), dtype=np.float32))
    assert data.nbytes == 2**30
    arr = InputArray(data=data, dims=("t", "y", "x"), coords={}, attrs={}, path="big.zarr",
                     var="v", kind="zarr")
    assert select(arr).values[0, 0] == 512
    assert read == [(512, 0, 0)]
    read.clear()
    plane = select(arr, {"t": 7}, ["y"])
    assert plane.dims == ("x",)
    assert read == [(7, 0, 0)]


def test_coordinates_and_units_of_hpcscale_histogram_outputs(tmp_path: Path) -> None:
    counts = np.arange(4 * 6).reshape(4, 6)
    ds = xr.Dataset({"temperature": (("time", "bin"), counts, {"units": "degC"})},
                    coords={"bin": np.arange(6) * 2.0 + 1.0})
    ds.to_zarr(tmp_path / "h.zarr", zarr_format=3, consolidated=False)
    plane = select(open_input(tmp_path / "h.zarr"))
    assert plane.axis_labels == ("time", "bin [degC]")
    assert plane.value_label == "count"
    line = select(open_input(tmp_path / "h.zarr"), {"time": 1})
    np.testing.assert_array_equal(line.values, counts[1])


def test_parse_slices() -> None:
    assert parse_slices(["time=5", "z=-1", "a=b=2"]) == {"time": 5, "z": -1, "a=b": 2}
    for bad in ["time", "=3", "time=", "time=1.5"]:
        with pytest.raises(UsageError, match="expected DIM=INDEX"):
            parse_slices([bad])


@pytest.mark.parametrize(("path", "name"), [
    ("hpcscale-demo/climate.zarr", "climate-preview.png"),
    ("hpcscale-demo/climate.zarr/", "climate-preview.png"),
    ("data/run.v2.nc", "run.v2-preview.png"),
    ("stacks/embryo1/*.tif", "embryo1-preview.png"),
])
def test_default_output_is_named_after_the_input(path: str, name: str) -> None:
    assert default_output(path) == Path(name)


# -- PNGs ----------------------------------------------------------------------------------------


def test_slice_png(cli: Cli, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "t5.png"
    r = cli("preview", str(demo / "climate.zarr"), "--slice", "time=5", "-o", str(out))
    assert r.code == 0, r
    assert r.out.strip() == f"wrote {out} (climate.zarr: temperature, time=5 (2000-01-06))"
    assert png(out) == (700, 400)  # a 2:1 map drawn to scale


def test_default_output_in_the_current_directory(cli: Cli, demo: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    r = cli("-q", "preview", str(demo / "cells.zarr"))
    assert r.code == 0, r
    assert r.err == ""
    assert "wrote cells-preview.png (cells.zarr: cells, z=8)" in r.out
    png(tmp_path / "cells-preview.png")


def test_max_projection_and_histogram_pngs(cli: Cli, demo: Path, tmp_path: Path) -> None:
    r = cli("preview", str(demo / "cells.zarr"), "--max", "z", "-o", str(tmp_path / "m.png"))
    assert r.code == 0, r
    assert "max over z" in r.out
    png(tmp_path / "m.png")
    r = cli("preview", str(demo / "climate.zarr"), "--histogram", "--bins", "30",
            "-o", str(tmp_path / "h.png"))
    assert r.code == 0, r
    assert png(tmp_path / "h.png") == (700, 500)


def test_compare_shares_the_scale_of_comparable_values(cli: Cli, demo: Path,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "c.png"
    r = cli("--json", "preview", str(demo / "cells.zarr"), "--compare",
            str(demo / "results" / "cells-gaussian-3d.zarr"), "-o", str(out))
    assert r.code == 0, r
    data = json.loads(r.out)
    assert data["path"] == str(out)
    assert data["selection"] == {"z": 8}
    assert data["shared_scale"] is True
    assert [p["selection"] for p in data["panels"]] == [{"z": 8}, {"z": 8}]
    assert png(out) == (1200, 560)


def test_compare_keeps_scales_apart_and_applies_a_dim_to_the_file_that_has_it(
        demo: Path, tmp_path: Path) -> None:
    t = _temperature(demo)
    xr.Dataset({"temperature": (("lat", "lon"), t.std(axis=0), {"units": "degC"})}).to_zarr(
        tmp_path / "std.zarr", zarr_format=3, consolidated=False)
    written = preview(str(demo / "climate.zarr"), compare=str(tmp_path / "std.zarr"),
                      slices=["time=5"], output=tmp_path / "c.png")
    assert written.shared_scale is False
    assert [p.selection for p in written.planes] == [{"time": 5}, {}]
    np.testing.assert_allclose(written.planes[1].values, t.std(axis=0))
    png(tmp_path / "c.png")
    hist = preview(str(demo / "climate.zarr"), compare=str(tmp_path / "std.zarr"),
                   histogram=True, output=tmp_path / "h.png")
    assert hist.histogram
    png(tmp_path / "h.png")


def test_compare_uses_the_other_files_only_array(demo: Path, tmp_path: Path) -> None:
    xr.Dataset({"result": (("y", "x"), _cells(demo)[8])}).to_zarr(
        tmp_path / "one.zarr", zarr_format=3, consolidated=False)
    written = preview(str(demo / "cells.zarr"), var="cells", compare=str(tmp_path / "one.zarr"),
                      output=tmp_path / "c.png")
    assert [p.var for p in written.planes] == ["cells", "result"]
    np.testing.assert_array_equal(written.planes[0].values, written.planes[1].values)


@pytest.mark.parametrize("shape", [(6,), (3, 6), ()], ids=["bars", "image", "value"])
def test_outputs_of_reductions_and_histograms(shape: tuple[int, ...], tmp_path: Path) -> None:
    dims = ("time", "bin")[-len(shape):] if shape else ()
    values = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape) + 3
    coords = {"bin": np.arange(6) * 2.0 - 5.0} if shape else {}
    xr.Dataset({"result": (dims, values, {"units": "degC"})}, coords=coords).to_zarr(
        tmp_path / "r.zarr", zarr_format=3, consolidated=False)
    written = preview(str(tmp_path / "r.zarr"), output=tmp_path / "r.png")
    np.testing.assert_array_equal(written.planes[0].values, values)
    png(tmp_path / "r.png")


def test_netcdf_tiff_and_npy_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xr.Dataset({"sst": (("time", "lat", "lon"), rng.normal(size=(3, 8, 12)), {"units": "K"})},
               coords={"lat": ("lat", np.linspace(-70, 70, 8), {"units": "degrees_north"}),
                       "lon": ("lon", np.arange(12) * 30.0)}).to_netcdf(
        tmp_path / "sst.nc", engine="h5netcdf")
    plane = preview(str(tmp_path / "sst.nc"), output=tmp_path / "nc.png").planes[0]
    assert plane.axis_labels == ("lat [degrees_north]", "lon")
    assert plane.value_label == "sst [K]"
    stack = rng.integers(0, 1000, size=(5, 32, 40), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    np.testing.assert_array_equal(select(open_input(tmp_path / "stack.tif")).values, stack[2])
    np.save(tmp_path / "mask.npy", rng.random((20, 30)) > 0.5)
    assert select(open_input(tmp_path / "mask.npy")).values.dtype == np.uint8
    png(tmp_path / "nc.png")


def test_nan_constant_and_time_axes_draw_without_warnings(demo: Path, tmp_path: Path) -> None:
    nan = np.full((4, 5), np.nan, dtype=np.float32)
    xr.Dataset({"v": (("y", "x"), nan)}).to_zarr(tmp_path / "nan.zarr", zarr_format=3,
                                                 consolidated=False)
    xr.Dataset({"v": (("y", "x"), np.ones((4, 5)))}).to_zarr(tmp_path / "one.zarr",
                                                              zarr_format=3, consolidated=False)
    preview(str(tmp_path / "nan.zarr"), histogram=True, output=tmp_path / "a.png")
    preview(str(tmp_path / "one.zarr"), compare=str(tmp_path / "nan.zarr"),
            output=tmp_path / "b.png")
    # (time, lon): dates on the vertical axis; one grid point's series: dates on a line plot
    preview(str(demo / "climate.zarr"), slices=["lat=45"], output=tmp_path / "c.png")
    preview(str(demo / "climate.zarr"), slices=["lat=45", "lon=0"], output=tmp_path / "d.png")
    for name in "abcd":
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    png(tmp_path / "c.png")


def test_overwrite(cli: Cli, demo: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    out.write_bytes(b"mine")
    assert cli("preview", str(demo / "cells.zarr"), "-o", str(out)).code == 2
    assert out.read_bytes() == b"mine"
    assert cli("preview", str(demo / "cells.zarr"), "-o", str(out), "--overwrite").code == 0
    png(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]  # no temporary file left


# -- mistakes ------------------------------------------------------------------------------------


def _setup_bad(d: Path) -> None:
    (d / "exists.png").write_bytes(b"mine")
    (d / "folder.png").mkdir()
    np.save(d / "complex.npy", np.ones((3, 3), dtype=np.complex64))
    np.save(d / "empty.npy", np.ones((0, 3)))


BAD = [
    ("unknown-dim", ["C", "--slice", "depth=3"],
     "climate.zarr has no dim depth (dims: time, lat, lon)"),
    ("out-of-range", ["C", "--slice", "time=48"],
     "index out of range; time has 48 values, use 0 to 47"),
    ("negative-out-of-range", ["C", "--slice", "time=-49"], "use 0 to 47 (or -48 to -1"),
    ("not-an-index", ["C", "--slice", "time=first"], "expected DIM=INDEX"),
    ("slice-twice", ["C", "--slice", "time=1", "--slice", "time=2"], "--slice time is given twice"),
    ("max-unknown", ["C", "--max", "depth"], "--max depth: climate.zarr has no dim depth"),
    ("max-and-slice", ["C", "--max", "time", "--slice", "time=2"], "choose one"),
    ("bins-alone", ["C", "--bins", "10"], "--bins applies only with --histogram"),
    ("bins-zero", ["C", "--histogram", "--bins", "0"], "--bins 0: expected a whole number >= 1"),
    ("not-png", ["C", "-o", "OUT/x.jpg"], "preview writes PNG images; name the file *.png"),
    ("no-dir", ["C", "-o", "OUT/nowhere/x.png"], "nowhere does not exist"),
    ("exists", ["C", "-o", "OUT/exists.png"], "exists.png exists; pass --overwrite"),
    ("is-dir", ["C", "-o", "OUT/folder.png", "--overwrite"], "folder.png is a directory"),
    ("no-input", ["OUT/missing.zarr"], "missing.zarr: no such file or directory"),
    ("no-var", ["C", "--var", "pressure"], "no array 'pressure' in the group"),
    ("complex", ["OUT/complex.npy"], "preview shows numbers; the array holds complex64 values"),
    ("empty", ["OUT/empty.npy"], "the array is empty (shape (0, 3)); there is nothing to show"),
    ("compare-missing", ["C", "--compare", "OUT/missing.zarr"], "no such file or directory"),
    ("compare-shape", ["CELLS", "--compare", "C"],
     "--compare: cells.zarr shows shape (256, 256) (y, x) but climate.zarr shows shape (90, 180) "
     "(lat, lon) after the selection"),
    ("compare-dim-in-neither", ["CELLS", "--compare", "C", "--slice", "depth=1"],
     "--slice depth=1: neither file has a dim depth"),
]


@pytest.mark.parametrize(("label", "args", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_mistakes_are_one_line_and_write_nothing(label: str, args: list[str], fragment: str,
                                                 cli: Cli, demo: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _setup_bad(tmp_path)
    monkeypatch.chdir(tmp_path)
    names = {"C": str(demo / "climate.zarr"), "CELLS": str(demo / "cells.zarr")}
    argv = [names.get(a, a.replace("OUT", str(tmp_path))) for a in args]
    before = sorted(p.name for p in tmp_path.iterdir())
    r = cli("preview", *argv)
    assert r.code == 2, r
    assert fragment in r.err, r
    assert "Traceback" not in r.err + r.out
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "a refused preview wrote a file"
    assert (tmp_path / "exists.png").read_bytes() == b"mine"


# -- the screenshots in docs/images are made by the documented commands ----------------------------


def _output_of(command: str) -> str | None:
    words = shlex.split(command)
    for flag in ("-o", "--output"):
        if flag in words:
            return words[words.index(flag) + 1]
    return None


def screenshot_commands() -> list[tuple[str, str]]:
    """(command, PNG name) of each ``$ hpcscale ... -o preview-*.png`` in docs/preview.md."""
    from test_docs import console_examples

    found = []
    for ex in console_examples(PAGE):
        name = _output_of(ex.command)
        if name is not None and name.startswith("preview-"):
            found.append((ex.command, name))
    return found


def test_screenshots_are_made_by_the_documented_commands(cli: Cli, demo: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    commands = screenshot_commands()
    committed = sorted(p.name for p in IMAGES.glob("preview-*.png"))
    assert sorted(name for _, name in commands) == committed == [
        "preview-compare.png", "preview-slice.png"]
    monkeypatch.chdir(demo.parent)
    for command, name in commands:
        (demo.parent / name).unlink(missing_ok=True)
        r = cli(*shlex.split(command)[1:])
        assert r.code == 0, f"docs/preview.md: `{command}`: {r.err}"
        with Image.open(IMAGES / name) as image:
            size = image.size
        assert png(demo.parent / name) == size, (
            f"`{command}` no longer makes a PNG of the size of docs/images/{name}; "
            "regenerate the screenshots: .venv/bin/python tests/unit/preview/test_preview.py "
            "--write-screenshots")


def write_screenshots() -> None:
    """Run the documented commands in a fresh directory; copy their PNGs to docs/images."""
    hpcscale = str(Path(sys.executable).parent / "hpcscale")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sample.make_all(work / "hpcscale-demo")
        shutil.copytree(REPO / "jobs", work / "jobs")
        # the compare screenshot shows this job's output (docs/preview.md says so)
        env = dict(os.environ, HPCSCALE_RUNS_DIR=str(work / "runs"))  # no run record left
        subprocess.run([hpcscale, "-q", "submit", "jobs/cells-gaussian.toml", "--site", "local"],
                       cwd=work, env=env, check=True)
        IMAGES.mkdir(exist_ok=True)
        for command, name in screenshot_commands():
            subprocess.run([hpcscale, *shlex.split(command)[1:]], cwd=work, env=env, check=True)
            shutil.copyfile(work / name, IMAGES / name)
            print(f"wrote {IMAGES / name}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-screenshots"]:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: helpers
        write_screenshots()
    else:
        print("usage: python tests/unit/preview/test_preview.py --write-screenshots",
              file=sys.stderr)
        sys.exit(2)


def test_preview_imports_nothing_above_it_nor_matplotlib() -> None:
    """matplotlib loads only to draw (preview/draw.py); run and the command line never."""
    above = ("hpcscale.run", "hpcscale.run.compute", "hpcscale.cli", "matplotlib")
    code = f"import sys, hpcscale.preview; sys.exit([m for m in {above} if m in sys.modules] or 0)"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, f"importing hpcscale.preview loads {r.stderr.strip()}"
