"""The map index without a cluster: rows to columns and variables, the journal, the
per-file folder names, and what a function may return."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from hpcscale.run.filemap import task
from hpcscale.run.filemap.index import MapFile, Results, assign_dirs, build_index


def _files(n: int) -> list[MapFile]:
    return [MapFile(f"/d/f{i}.txt", f"d/f{i}.txt", f"f{i}") for i in range(n)]


def _row(key: str, status: str = "ok", t: float = 1.0, **values: object) -> dict:  # type: ignore[type-arg]
    return {"key": key, "status": status, "seconds": 0.5, "worker": "w", "error": "",
            "t": t, "values": task.encode(values)}


def test_columns_keep_their_type_and_mark_what_is_missing() -> None:
    files = _files(4)
    rows = {
        "/d/f0.txt": _row("/d/f0.txt", i=1, x=0.5, s="a", b=True, mixed=1, arr=np.ones(2)),
        "/d/f1.txt": _row("/d/f1.txt", i=2, x=1.5, s="bb", b=False, mixed="two",
                          arr=np.zeros(2)),
        "/d/f2.txt": {**_row("/d/f2.txt", status="failed"), "error": "ValueError: no"},
    }
    ds, left_out = build_index(files, rows, {"function": "f"})
    assert left_out == []
    assert list(ds.status.values) == ["ok", "ok", "failed", "not run"]
    assert ds.error.values[2] == "ValueError: no"
    assert np.isnan(ds.seconds.values[3])
    # ints and bools with a file missing become float NaN; strings ""
    np.testing.assert_array_equal(ds.i.values[:2], [1, 2])
    assert ds.i.dtype == np.float64
    assert np.isnan(ds.i.values[2])
    assert ds.b.dtype == np.float64
    assert list(ds.s.values) == ["a", "bb", "", ""]
    assert list(ds.mixed.values) == ["1", "two", "", ""]
    assert ds.arr.dims == ("file", "arr_dim_0")
    assert np.isnan(ds.arr.values[2:]).all()
    assert ds.attrs["files_ok"] == 2
    assert ds.attrs["files_not_run"] == 1


def test_all_present_ints_and_bools_stay_ints_and_bools() -> None:
    files = _files(2)
    rows = {f.key: _row(f.key, i=k, b=bool(k), a=np.arange(3, dtype="uint8"))
            for k, f in enumerate(files)}
    ds, _ = build_index(files, rows, {})
    assert ds.i.dtype == np.int64
    assert ds.b.dtype == bool
    assert ds.a.dtype == np.uint8


def test_arrays_of_other_shapes_or_mixed_with_scalars_are_left_out() -> None:
    files = _files(3)
    rows = {"/d/f0.txt": _row("/d/f0.txt", a=np.ones(2), c=np.ones(2)),
            "/d/f1.txt": _row("/d/f1.txt", a=np.ones(3), c=1.0),
            "/d/f2.txt": _row("/d/f2.txt", a=np.ones(2), c=np.ones(2))}
    ds, left_out = build_index(files, rows, {})
    assert "a" not in ds
    assert "c" not in ds
    assert [line.split(":")[0] for line in left_out] == ["a", "c"]


def test_the_index_is_a_zarr_store_xarray_opens_and_a_csv(tmp_path: Path) -> None:
    results = Results(tmp_path / "out", "out")
    results.start({"function": {}}, overwrite=False)
    files = _files(3)
    results.append([_row(f.key, n=i, v=np.full(2, i)) for i, f in enumerate(files[:2])])
    results.write_index(files, results.read_rows(), {"kwargs": {"k": [1, 2]}})
    results.write_index(files, results.read_rows(), {})  # again: replaces the first
    ds = xr.open_zarr(tmp_path / "out" / "index.zarr").load()
    assert list(ds.file.values) == [f.file for f in files]
    np.testing.assert_array_equal(ds.v.values[:2], [[0, 0], [1, 1]])
    csv = (tmp_path / "out" / "index.csv").read_text().splitlines()
    assert csv[0] == "file,dir,status,seconds,worker,error,n"
    assert csv[3].startswith("d/f2.txt,f2,not run,")
    assert not list((tmp_path / "out").glob(".index.zarr*"))


def test_the_journal_keeps_the_last_row_and_skips_a_line_cut_short(tmp_path: Path) -> None:
    results = Results(tmp_path / "out")
    results.start({}, overwrite=False)
    results.append([_row("/a", status="failed", t=1.0), _row("/b", t=1.0)])
    (results.rows_dir / "7_0.jsonl").write_text(
        json.dumps(_row("/a", t=2.0)) + "\n" + '{"key": "/c", "sta')
    rows = results.read_rows()
    assert sorted(rows) == ["/a", "/b"]
    assert rows["/a"]["status"] == "ok"
    # rows files are read as they grow, whole lines only
    assert [r["key"] for r in results.new_rows("7_*.jsonl")] == ["/a"]
    with (results.rows_dir / "7_0.jsonl").open("a") as f:
        f.write('tus": "ok", "t": 3}\n')
    assert [r["key"] for r in results.new_rows("7_*.jsonl")] == ["/c"]
    assert results.new_rows("7_*.jsonl") == []
    results.start({}, overwrite=True)
    assert results.read_rows() == {}


def test_folder_names_are_safe_unique_and_stable() -> None:
    found = [("/x/a/scan 1.tif", "a/scan 1.tif", 1), ("/x/b/scan 1.tif", "b/scan 1.tif", 1),
             ("/x/index.zarr.tif", "index.zarr.tif", 1), ("/x/.hidden", ".hidden", 1),
             ("/x/runs.zarr", "runs.zarr", 0)]
    files = assign_dirs(found, {})
    names = [f.dir for f in files]
    assert names[0] == "scan_1"
    assert names[1].startswith("scan_1-")
    assert names[2].startswith("index.zarr-")
    assert names[3] == "hidden"
    assert names[4] == "runs"
    assert len(set(names)) == len(names)
    # an earlier run's names are kept, whatever else the glob matches now
    again = assign_dirs([("/x/new/scan 1.tif", "new/scan 1.tif", 1), *found],
                        {f.key: f.dir for f in files})
    assert [f.dir for f in again[1:]] == names
    assert again[0].dir.startswith("scan_1-")
    assert again[0].dir not in names


@pytest.mark.parametrize(("returned", "said"), [
    ([1, 2], "the function returned a list; expected a dict"),
    ({1: 2}, "the function returned key 1; keys must be names"),
    ({"9x": 2}, "keys must be names"),
    ({"error": "mine"}, "'error', a column the index has for every file"),
    ({"a": {"b": 1}}, "the function returned 'a' as a dict"),
    ({"a": ["x", "y"]}, "an array of <U1"),
    ({"a": [[1], [1, 2]]}, "not an array"),
])
def test_what_a_function_may_not_return(returned: object, said: str) -> None:
    with pytest.raises(task.BadResult) as info:
        task.encode(returned)
    assert said in str(info.value)


def test_what_a_function_may_return() -> None:
    values = task.encode({"i": np.int16(3), "f": np.float32(0.5), "b": np.bool_(True),
                          "p": Path("/x"), "z": np.array(7), "none": None,
                          "a": np.arange(4).reshape(2, 2)})
    assert values["i"] == 3
    assert values["f"] == 0.5
    assert values["b"] is True
    assert values["p"] == "/x"
    assert values["z"] == 7
    assert "none" not in values
    json.dumps(values)  # a row is JSON
    np.testing.assert_array_equal(task.decode(values["a"]), np.arange(4).reshape(2, 2))


def test_run_one_records_an_exception_and_system_exit_as_failed(tmp_path: Path) -> None:
    def boom(path: Path, out_dir: Path) -> None:
        raise OSError("disk\non fire")

    def leave(path: Path, out_dir: Path) -> None:
        raise SystemExit(3)

    row = task.run_one(boom, "/x", str(tmp_path / "o"), {}, worker="here")
    assert row["status"] == "failed"
    assert row["error"].startswith("OSError: disk on fire (test_filemap_index.py line")
    assert row["worker"] == "here"
    assert task.run_one(leave, "/x", str(tmp_path / "o"), {})["error"].startswith(
        "SystemExit: 3")
    (tmp_path / "o" / "stale").write_text("")  # an earlier attempt's file: gone next time
    task.run_one(lambda p, o: None, "/x", str(tmp_path / "o"), {})
    assert list((tmp_path / "o").iterdir()) == []
