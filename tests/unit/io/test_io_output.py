"""Zarr output: what xarray reads back, codecs, overwrite guards, shards, completion marker."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import hpcscale
from hpcscale.errors import OutputError
from hpcscale.io import output
from hpcscale.io.inputs import open_input
from hpcscale.io.output import check_output, default_codec, is_complete, read_marker, write_zarr

RNG = np.random.default_rng(11)
VALUES = RNG.standard_normal((12, 10)).astype("f4")
# Ragged on purpose: a Zarr chunk grid is regular.
RAGGED = da.from_array(VALUES, chunks=((3, 5, 4), (6, 4)))
PROVENANCE = {"operation": "histogram", "parameters": {"bins": 5}, "input": Path("in.zarr")}


def write(path: Path, data: da.Array = RAGGED, **kw: Any) -> None:
    args: dict[str, Any] = {"name": "result", "dims": ("bin", "x"), "provenance": PROVENANCE}
    args.update(kw)
    write_zarr(data, path=path, **args).compute()


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_xarray_reads_dims_coords_attrs_and_provenance(tmp_path: Path, zarr_format: int) -> None:
    out = tmp_path / "out.zarr"
    bins = np.linspace(0.5, 11.5, 12)
    write(
        out,
        coords={"bin": bins, "z": np.arange(3), "edges": (("edge",), np.arange(13.0))},
        attrs={"units": "counts", "long_name": "histogram"},
        zarr_format=zarr_format,
    )
    ds = xr.open_zarr(out)  # no options: no warning (pytest turns them into errors)
    result = ds["result"]
    assert result.dims == ("bin", "x")
    np.testing.assert_array_equal(result.values, VALUES)
    np.testing.assert_array_equal(ds["bin"].values, bins)
    np.testing.assert_array_equal(ds["edges"].values, np.arange(13.0))
    assert "z" not in ds.variables  # the operation removed dim z
    assert result.attrs == {"units": "counts", "long_name": "histogram"}
    prov = ds.attrs["provenance"]
    assert prov["operation"] == "histogram"
    assert prov["parameters"] == {"bins": 5}
    assert prov["input"] == "in.zarr"
    assert prov["hpcscale_version"] == hpcscale.__version__
    assert prov["time"].endswith("+00:00")
    assert ds.attrs["hpcscale"]["complete"] is True
    assert zarr.open_group(out, mode="r").metadata.zarr_format == zarr_format
    # Regular chunks, the largest of the ragged dask chunks.
    assert result.encoding["chunks"] == (5, 6)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_a_result_opens_as_an_input(tmp_path: Path, zarr_format: int) -> None:
    out = tmp_path / "out.zarr"
    bins = np.arange(12.0)
    write(out, coords={"bin": bins}, attrs={"units": "K"}, zarr_format=zarr_format)
    arr = open_input(out)
    assert (arr.var, arr.dims, arr.attrs) == ("result", ("bin", "x"), {"units": "K"})
    np.testing.assert_array_equal(arr.coords["bin"], bins)
    np.testing.assert_array_equal(arr.data.compute(), VALUES)


def test_caller_provenance_time_and_version_are_kept(tmp_path: Path) -> None:
    write(tmp_path / "o.zarr", provenance={"time": "yesterday", "hpcscale_version": "9"})
    assert xr.open_zarr(tmp_path / "o.zarr").attrs["provenance"] == {
        "time": "yesterday",
        "hpcscale_version": "9",
    }


def test_attributes_that_would_rescale_values_are_dropped(tmp_path: Path) -> None:
    write(tmp_path / "o.zarr", attrs={"units": "K", "scale_factor": 0.01, "add_offset": 5})
    ds = xr.open_zarr(tmp_path / "o.zarr")
    np.testing.assert_array_equal(ds["result"].values, VALUES)
    assert ds["result"].attrs == {"units": "K"}


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_integer_zeros_stay_integer_zeros_in_xarray(tmp_path: Path, zarr_format: int) -> None:
    # xarray masks a v2 array's fill_value as missing: 0 would come back NaN.
    counts = np.array([[0, 3, 0], [1, 0, 2]], dtype="i8")
    write(tmp_path / "c.zarr", data=da.from_array(counts), dims=("a", "b"), zarr_format=zarr_format)
    back = xr.open_zarr(tmp_path / "c.zarr")["result"]
    assert back.dtype == np.int64
    np.testing.assert_array_equal(back.values, counts)


def test_unknown_chunk_sizes_are_a_caller_bug(tmp_path: Path) -> None:
    values = np.arange(10.0)
    data = da.from_array(values, chunks=5)[da.from_array(values > 3, chunks=5)]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        write(tmp_path / "o.zarr", data=data, dims=("i",))


def test_scalar_result(tmp_path: Path) -> None:
    write_zarr(
        da.from_array(np.float64(2.5)),
        path=tmp_path / "s.zarr",
        name="mean",
        dims=(),
        provenance={},
    ).compute()
    assert float(xr.open_zarr(tmp_path / "s.zarr")["mean"]) == 2.5


# --- codecs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "shuffle"), [("f4", "shuffle"), ("i2", "shuffle"), ("u1", "noshuffle")]
)
def test_v3_codec_is_blosc_lz4_with_byte_shuffle(tmp_path: Path, dtype: str, shuffle: str) -> None:
    write(tmp_path / "o.zarr", data=RAGGED.astype(dtype))
    meta = json.loads((tmp_path / "o.zarr" / "result" / "zarr.json").read_text())
    codecs = {c["name"]: c.get("configuration", {}) for c in meta["codecs"]}
    assert codecs["blosc"] == {
        "typesize": np.dtype(dtype).itemsize,
        "cname": "lz4",
        "clevel": 5,
        "shuffle": shuffle,
        "blocksize": 0,
    }
    assert "zstd" not in codecs


def test_v2_codec_is_numcodecs_blosc(tmp_path: Path) -> None:
    write(tmp_path / "o.zarr", zarr_format=2)
    meta = json.loads((tmp_path / "o.zarr" / "result" / ".zarray").read_text())
    assert meta["compressor"] == {
        "id": "blosc",
        "cname": "lz4",
        "clevel": 5,
        "shuffle": 1,
        "blocksize": 0,
    }


def test_strings_keep_zarrs_default() -> None:
    assert default_codec(np.dtype("U4"), 3) is None


# --- overwrite guards --------------------------------------------------------


def test_existing_result_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    write(out)
    before = tree(out)
    with pytest.raises(
        OutputError, match=r"o.zarr: already exists .*pass --overwrite to replace it"
    ):
        check_output(out, overwrite=False)
    with pytest.raises(OutputError, match="pass --overwrite"):
        write(out, data=RAGGED * 2)
    assert tree(out) == before


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_overwrite_replaces_our_own_store(tmp_path: Path, zarr_format: int) -> None:
    out = tmp_path / "o.zarr"
    write(out, zarr_format=5 - zarr_format)  # the other format first: nothing of it may remain
    write(out, data=RAGGED * 2, overwrite=True, zarr_format=zarr_format)
    np.testing.assert_array_equal(xr.open_zarr(out)["result"].values, VALUES * 2)
    stale = ".zgroup" if zarr_format == 3 else "zarr.json"
    assert not (out / stale).exists()


def _foreign_dir(tmp: Path) -> Path:
    (tmp / "mine").mkdir()
    (tmp / "mine" / "thesis.tex").write_text("years of work")
    return tmp / "mine"


def _foreign_zarr(tmp: Path) -> Path:
    zarr.create_array(tmp / "other.zarr", shape=(4,), chunks=(2,), dtype="i4")[:] = 7
    return tmp / "other.zarr"


def _file(tmp: Path) -> Path:
    (tmp / "out.zarr").write_text("not a store")
    return tmp / "out.zarr"


def _ours_plus_a_file(tmp: Path) -> Path:
    write(tmp / "o.zarr")
    (tmp / "o.zarr" / "notes.txt").write_text("keep me")
    return tmp / "o.zarr"


@pytest.mark.parametrize("make", [_foreign_dir, _foreign_zarr, _file, _ours_plus_a_file])
def test_never_replaces_what_hpcscale_did_not_write(tmp_path: Path, make: Any) -> None:
    target = make(tmp_path)
    before = tree(target) if target.is_dir() else {"": target.read_bytes()}
    with pytest.raises(OutputError, match=r"refusing to replace it, even with --overwrite") as info:
        write(target, overwrite=True)
    assert "\n" not in str(info.value)
    after = tree(target) if target.is_dir() else {"": target.read_bytes()}
    assert after == before


def test_empty_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "o.zarr").mkdir()
    write(tmp_path / "o.zarr")
    assert is_complete(tmp_path / "o.zarr")


def test_parent_must_exist_and_be_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutputError, match=r"parent directory .*/nope does not exist"):
        check_output(tmp_path / "nope" / "o.zarr", overwrite=False)
    monkeypatch.setattr(output.os, "access", lambda *_: False)  # root may write anywhere
    with pytest.raises(OutputError, match=r"o.zarr: parent directory .* is not writable"):
        check_output(tmp_path / "o.zarr", overwrite=False)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"name": "x"}, r"array name 'x' must be non-empty, without '/', and differ from the dims"),
        ({"name": "a/b"}, r"array name 'a/b'"),
        ({"zarr_format": 4}, r"zarr_format 4; expected 2 or 3"),
        ({"shards": (10, 9)}, r"shards \[10, 9\] must be whole multiples of the chunks \[5, 6\]"),
        ({"shards": (10,)}, r"shards \[10\] must be whole multiples"),
        ({"shards": (10, 12), "zarr_format": 2}, r"shards need zarr_format 3"),
    ],
)
def test_bad_options_are_output_errors(tmp_path: Path, kw: dict[str, Any], message: str) -> None:
    with pytest.raises(OutputError, match=message):
        write(tmp_path / "o.zarr", **kw)


# --- shards ------------------------------------------------------------------


def test_sharded_write_is_exact(tmp_path: Path) -> None:
    # Many small chunks per shard: tasks writing parts of one shard would
    # silently lose data, so every element is compared.
    values = RNG.integers(-(2**31), 2**31 - 1, size=(60, 44), dtype="i4")
    data = da.from_array(values, chunks=(3, 4))
    write(tmp_path / "s.zarr", data=data, shards=(12, 16))
    arr = zarr.open_array(tmp_path / "s.zarr" / "result", mode="r")
    assert (arr.chunks, arr.shards) == ((3, 4), (12, 16))
    np.testing.assert_array_equal(arr[...], values)
    np.testing.assert_array_equal(xr.open_zarr(tmp_path / "s.zarr")["result"].values, values)
    assert len(list((tmp_path / "s.zarr" / "result" / "c").rglob("*"))) > 5


# --- completion marker -------------------------------------------------------


def test_marker_is_false_until_finalize(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    pending = write_zarr(
        RAGGED, path=out, name="result", dims=("y", "x"), provenance=PROVENANCE
    )
    marker = read_marker(out)
    assert marker is not None
    assert marker["complete"] is False
    assert (marker["writer"], marker["array"]) == ("hpcscale", "result")
    assert not is_complete(out)
    # A crashed run is still recognised as ours, so --overwrite may replace it.
    check_output(out, overwrite=True)
    for block in pending.blocks.values():
        pickle.loads(pickle.dumps(block)).compute()  # as a worker would
    assert not is_complete(out)
    with pytest.raises(OutputError, match=r"6 block\(s\) not written"):
        pending.finalize()  # written, but not recorded as written
    pending.written(pending.blocks)
    assert xr.open_zarr(out).attrs["hpcscale"]["complete"] is False
    pending.finalize()
    assert is_complete(out)
    marker = read_marker(out)
    assert marker is not None
    assert "completed" in marker
    # The consolidated metadata xarray reads was refreshed too.
    assert xr.open_zarr(out).attrs["hpcscale"]["complete"] is True
    np.testing.assert_array_equal(xr.open_zarr(out)["result"].values, VALUES)


def test_marker_of_things_that_are_not_ours(tmp_path: Path) -> None:
    assert read_marker(tmp_path / "missing") is None
    assert read_marker(_foreign_zarr(tmp_path)) is None
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "zarr.json").write_text("{oops")
    assert read_marker(tmp_path / "bad") is None
    assert not is_complete(tmp_path / "bad")


def test_finalize_refuses_a_store_that_was_replaced(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    pending = write_zarr(RAGGED, path=out, name="r", dims=("y", "x"), provenance={})
    pending.written(pending.blocks)
    os.remove(out / "zarr.json")
    with pytest.raises(OutputError, match="marker missing"):
        pending.finalize()


# --- resume: the manifest, not the chunk files, says what is written ----------------

BIG = da.from_array(RNG.standard_normal((16, 12)).astype("f4"), chunks=(4, 3))  # 16 blocks
JOB = "job-a"


def _chunks(root: Path) -> dict[str, bytes]:
    """The array's chunk files (not its metadata, which carries times)."""
    return {k: v for k, v in tree(root).items()
            if k.startswith("result/") and Path(k).name not in {"zarr.json", ".zarray", ".zattrs"}}


def _start(path: Path, data: da.Array = BIG, **kw: Any) -> output.PendingWrite:
    return write_zarr(data, path=path, name="result", dims=("y", "x"), provenance={},
                      job=JOB, **kw)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_an_interrupted_write_resumes_bit_identical_with_fewer_blocks(
    tmp_path: Path, zarr_format: int
) -> None:
    whole = tmp_path / "whole.zarr"
    _start(whole, zarr_format=zarr_format).compute()

    out = tmp_path / "out.zarr"
    first = _start(out, zarr_format=zarr_format)
    assert (first.total, first.resumed, len(first.blocks)) == (16, 0, 16)
    done = list(first.blocks)[:6]
    for i in done:
        first.blocks[i].compute()
    first.written(done[:5])  # the 6th block was written but the driver died before recording it
    chunk_dir = out / "result" / ("c" if zarr_format == 3 else "")
    stray = next(p for p in chunk_dir.rglob("*") if p.is_file() and p.name != "zarr.json")
    half = stray.with_suffix(".0123abcd.partial")
    half.write_bytes(b"half a chunk")  # what zarr leaves when a worker dies mid-write

    assert check_output(out, overwrite=False, job=JOB) == "resume"
    again = _start(out, zarr_format=zarr_format)
    assert (again.total, again.resumed, len(again.blocks)) == (16, 5, 11)
    assert again.partials_removed == 1
    assert not half.exists()
    assert set(again.blocks).isdisjoint(done[:5])  # recorded blocks are not computed again
    again.compute()
    assert is_complete(out)
    assert not (out / ".hpcscale-manifest").exists()
    assert _chunks(out) == _chunks(whole)  # bit-identical data
    assert _chunks(out)  # (and there are chunks to compare)
    np.testing.assert_array_equal(xr.open_zarr(out)["result"].values, BIG.compute())


def test_a_torn_manifest_line_is_ignored(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    pending = _start(out)
    pending.written([(0, 0), (1, 2)])
    with (out / ".hpcscale-manifest").open("a") as f:
        f.write("[3, ")  # killed mid-append
    assert _start(out).resumed == 2


def test_an_unfinished_store_of_another_job_is_not_resumed(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    _start(out)
    before = tree(out)
    with pytest.raises(OutputError, match=r"unfinished result of a different job.*--overwrite"):
        check_output(out, overwrite=False, job="job-b")
    with pytest.raises(OutputError, match="different job"):
        check_output(out, overwrite=False)  # no job given: nothing to match
    assert tree(out) == before
    assert check_output(out, overwrite=True, job="job-b") == "replace"


def test_an_unfinished_store_of_a_changed_function_says_so(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    _start(out, functions={"/lab/seg.py:seg": "aaa", "numpy:negative": "bbb"})
    marker = read_marker(out)
    assert marker is not None
    assert marker["functions"] == {"/lab/seg.py:seg": "aaa", "numpy:negative": "bbb"}
    before = tree(out)
    with pytest.raises(OutputError, match=r"made with another version of the function "
                       r"/lab/seg.py:seg \(it changed since that run started\).*--overwrite"):
        check_output(out, overwrite=False, job="job-b",
                     functions={"/lab/seg.py:seg": "ccc", "numpy:negative": "bbb"})
    # the same functions, another job: the general refusal, which names functions too
    with pytest.raises(OutputError, match=r"different job \(other input, steps, functions"):
        check_output(out, overwrite=False, job="job-b",
                     functions={"/lab/seg.py:seg": "aaa"})
    assert check_output(out, overwrite=False, job=JOB, functions={}) == "resume"
    assert tree(out) == before


def test_a_store_of_a_different_shape_is_not_resumed(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    _start(out)
    with pytest.raises(OutputError, match=r"cannot resume.*float32\[16, 12\].*--overwrite"):
        _start(out, data=BIG[:8])


def test_a_store_being_written_by_a_live_run_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    _start(out)
    meta = json.loads((out / "zarr.json").read_text())
    other = subprocess.Popen(["sleep", "30"])
    try:
        meta["attributes"]["hpcscale"]["pid"] = other.pid
        (out / "zarr.json").write_text(json.dumps(meta))
        for overwrite in (False, True):
            with pytest.raises(OutputError, match=rf"being written by run .*pid {other.pid}"):
                check_output(out, overwrite=overwrite, job=JOB)
    finally:
        other.kill()
        other.wait()
    # once that process is gone (kill -9, logout), the store is resumable
    assert check_output(out, overwrite=False, job=JOB) == "resume"


def test_finalize_needs_every_block_recorded(tmp_path: Path) -> None:
    out = tmp_path / "o.zarr"
    pending = _start(out)
    for block in pending.blocks.values():
        block.compute()
    pending.written(list(pending.blocks)[:-1])
    with pytest.raises(OutputError, match=r"1 block\(s\) not written"):
        pending.finalize()
    assert not is_complete(out)
