"""``hpcscale map`` on this machine: a function per file, the index, failures, resume.

The function counts its calls in a log file beside it, so a test sees which
files a run processed (a re-run must process only those not ok).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from helpers import Cli, write_profile

FUNCTION = '''
from pathlib import Path

import numpy as np

CALLS = Path(__file__).with_name("calls.log")


def measure(path, out_dir, scale=1):
    with CALLS.open("a") as log:
        log.write(path.name + "\\n")
    n = int(path.read_text())
    if n < 0:
        raise ValueError(f"negative count in {path.name}")
    (out_dir / "double.txt").write_text(str(2 * n))
    return {"n": n * scale, "label": "x" * n, "even": n % 2 == 0,
            "hist": np.arange(3, dtype="int32") * n}
'''


@pytest.fixture
def world(tmp_path: Path, user_sites: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``data/`` of 12 small files (two of them make the function fail), the function in
    ``fn.py``, a one-process local site; the current directory is ``tmp_path``."""
    write_profile(user_sites, "one", 'kind = "local"\n[local]\nworkers = 1\nthreads = 2\n')
    (tmp_path / "data").mkdir()
    for i in range(12):
        (tmp_path / "data" / f"f{i:02d}.txt").write_text(str(-i if i in (3, 7) else i))
    (tmp_path / "fn.py").write_text(FUNCTION)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def calls(world: Path) -> list[str]:
    log = world / "calls.log"
    names = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(names)


def _map(cli: Cli, *more: str) -> object:
    return cli("map", "data/*.txt", "results", "--fn", "fn.py:measure", "--site", "one", *more)


def test_failing_files_give_a_complete_index_and_a_rerun_does_only_them(
    cli: Cli, world: Path
) -> None:
    r = _map(cli)
    assert r.code == 1, r
    assert r.err.strip().splitlines()[-1] == (
        "error: 2 of 12 files failed (see results/index.csv)")
    assert len(calls(world)) == 12

    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert list(index.file.values) == [f"data/f{i:02d}.txt" for i in range(12)]
    status = dict(zip(index.file.values, index.status.values, strict=True))
    assert [f for f, s in status.items() if s == "failed"] == ["data/f03.txt", "data/f07.txt"]
    errors = dict(zip(index.file.values, index.error.values, strict=True))
    assert errors["data/f03.txt"] == "ValueError: negative count in f03.txt (fn.py line 14)"
    assert errors["data/f00.txt"] == ""
    assert (index.seconds.values >= 0).all()
    assert all(w for w in index.worker.values)
    # columns: NaN / "" where a file failed; arrays with a leading file dim
    assert np.isnan(index.n.values[3])
    assert index.n.values[5] == 5
    assert index.label.values[4] == "xxxx"
    assert index.label.values[7] == ""
    assert index.hist.dims == ("file", "hist_dim_0")
    np.testing.assert_array_equal(index.hist.values[5], [0, 5, 10])
    assert np.isnan(index.hist.values[3]).all()
    # a folder per file, made for it; the failed ones' too
    assert (world / "results" / "f05" / "double.txt").read_text() == "10"
    assert (world / "results" / "f03").is_dir()

    table = (world / "results" / "index.csv").read_text().splitlines()
    assert table[0] == "file,dir,status,seconds,worker,error,n,label,even"
    assert table[4].startswith("data/f03.txt,f03,failed,")
    assert "ValueError: negative count in f03.txt" in table[4]

    # the same command again: only the two failed files
    r = _map(cli)
    assert r.code == 1
    assert calls(world) == ["f03.txt", "f07.txt"]

    # fixed inputs: the two are processed, nothing else; everything is ok now
    for i in (3, 7):
        (world / "data" / f"f{i:02d}.txt").write_text(str(i))
    r = _map(cli)
    assert r.code == 0, r
    assert calls(world) == ["f03.txt", "f07.txt"]
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert set(index.status.values) == {"ok"}
    np.testing.assert_array_equal(index.n.values, np.arange(12))
    assert index.n.dtype == np.int64
    assert index.even.dtype == bool
    assert index.hist.dtype == np.int32

    # nothing left to do: no cluster, no call
    r = _map(cli)
    assert r.code == 0
    assert calls(world) == []
    assert "nothing to process" in r.err


def test_overwrite_processes_every_file_again(cli: Cli, world: Path) -> None:
    assert _map(cli).code == 1
    calls(world)
    r = _map(cli, "--kwarg", "scale=10", "--overwrite")
    assert r.code == 1
    assert len(calls(world)) == 12
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert index.n.values[5] == 50


def test_max_failures_stops_early_and_keeps_what_finished(cli: Cli, world: Path) -> None:
    for i in range(12):  # every file fails
        (world / "data" / f"f{i:02d}.txt").write_text(str(-1 - i))
    r = _map(cli, "--max-failures", "2")
    assert r.code == 1, r
    line = r.err.strip().splitlines()[-1]
    assert line.startswith("error: ")
    assert "stopped after" in line
    assert "--max-failures 2" in line
    assert "re-run the same command" in line
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    status = list(index.status.values)
    assert status.count("failed") >= 2
    assert "not run" in status  # the rest were cancelled, left for a re-run
    assert status.count("failed") + status.count("not run") == 12


def test_changed_function_on_resume_is_refused_unless_overwrite(cli: Cli, world: Path) -> None:
    assert _map(cli).code == 1
    calls(world)
    (world / "fn.py").write_text(FUNCTION.replace("2 * n", "3 * n"))
    before = (world / "results" / "index.csv").read_bytes()
    r = _map(cli)
    assert r.code == 2
    assert len(r.err.strip().splitlines()) == 1
    assert "the function is now fn.py:measure" in r.err
    assert "it changed" in r.err
    assert "--overwrite" in r.err
    assert calls(world) == []
    assert (world / "results" / "index.csv").read_bytes() == before
    r = _map(cli, "--overwrite")
    assert r.code == 1
    assert len(calls(world)) == 12
    assert (world / "results" / "f05" / "double.txt").read_text() == "15"


def test_changed_kwargs_on_resume_are_refused(cli: Cli, world: Path) -> None:
    assert _map(cli).code == 1
    r = _map(cli, "--kwarg", "scale=2")
    assert r.code == 2
    assert "kwargs" in r.err
    assert "--overwrite" in r.err


def test_a_job_spec_runs_the_same_map(cli: Cli, world: Path) -> None:
    (world / "jobs").mkdir()
    (world / "jobs" / "fn.py").write_text(FUNCTION)
    spec = world / "jobs" / "count.toml"
    spec.write_text('''
description = "count the files"
[map]
files = "data/*.txt"
function = "fn.py:measure"   # beside this spec
kwargs = { scale = 2 }
output = "results"
[run]
site = "one"
''')
    r = cli("submit", str(spec))
    assert r.code == 1, r
    assert "2 of 12 files failed (see results/index.csv)" in r.err
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert index.n.values[5] == 10
    assert (world / "jobs" / "calls.log").exists()
    r = cli("plan", str(spec))
    assert r.code == 0
    assert "to process      2 (10 already ok in results)" in r.out
    r = cli("map", "data/*.txt", "results", "--fn", "jobs/fn.py:measure", "-k", "scale=2",
            "--print-spec")
    assert r.code == 0
    assert 'function = "jobs/fn.py:measure"' in r.out
    assert "scale = 2" in r.out


def test_the_index_is_written_when_the_run_is_interrupted(
    cli: Cli, world: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpcscale.run.filemap.index import Results

    append = Results.append

    def interrupt_after_the_first_rows(self: Results, rows: list) -> None:  # type: ignore[type-arg]
        append(self, rows)
        if self.journal.exists():
            raise KeyboardInterrupt("signal 2")

    monkeypatch.setattr(Results, "append", interrupt_after_the_first_rows)
    r = _map(cli)
    assert r.code == 130, r
    assert "re-run the same command" in r.err
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    journal = [json.loads(line) for line in
               (world / "results" / ".hpcscale" / "journal.jsonl").read_text().splitlines()]
    assert 1 <= len(journal) < 12
    assert list(index.status.values).count("not run") == 12 - len(journal)
    monkeypatch.setattr(Results, "append", append)
    calls(world)
    # the re-run takes the journal's rows: the ok files of the interrupted run are not redone
    r = _map(cli)
    assert r.code == 1
    assert len(calls(world)) == 12 - sum(row["status"] == "ok" for row in journal)


def test_arrays_of_other_shapes_are_left_out_and_said(cli: Cli, world: Path) -> None:
    (world / "fn.py").write_text('''
import numpy as np
def ragged(path, out_dir):
    n = abs(int(path.read_text()))
    return {"same": np.ones((2, 2)) * n, "ragged": np.zeros(n % 3 + 1), "none": None}
''')
    r = cli("map", "data/*.txt", "results", "--fn", "fn.py:ragged", "--site", "one")
    assert r.code == 0, r
    assert "left out of the index: ragged" in r.err
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert "ragged" not in index
    assert "none" not in index
    assert index.same.shape == (12, 2, 2)
    assert index.attrs["left_out"][0].startswith("ragged:")


def test_a_bad_return_value_fails_that_file_with_one_line(cli: Cli, world: Path) -> None:
    (world / "fn.py").write_text('''
def bad(path, out_dir):
    n = abs(int(path.read_text()))
    if n == 1:
        return [1, 2]
    if n == 2:
        return {"status": "mine"}
    if n == 4:
        return {"obj": object()}
    return {"n": n}
''')
    r = cli("map", "data/*.txt", "results", "--fn", "fn.py:bad", "--site", "one")
    assert r.code == 1
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    errors = list(index.error.values)
    assert errors[1] == ("the function returned a list; expected a dict (one row of the "
                         "index) or None")
    assert "'status', a column the index has for every file" in errors[2]
    assert errors[4].startswith("the function returned 'obj' as a object")
    assert list(index.status.values).count("failed") == 3


def test_stems_that_collide_get_folders_of_their_own(cli: Cli, world: Path) -> None:
    for sub in ("a", "b"):
        (world / "data" / sub).mkdir()
        (world / "data" / sub / "same.txt").write_text("1")
    r = cli("map", "data/*/same.txt", "results", "--fn", "fn.py:measure", "--site", "one")
    assert r.code == 0, r
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    dirs = list(index["dir"].values)
    assert dirs[0] == "same"
    assert dirs[1].startswith("same-")
    assert len(set(dirs)) == 2
    assert all((world / "results" / d / "double.txt").exists() for d in dirs)


def test_the_run_is_on_record(cli: Cli, world: Path) -> None:
    r = cli("--json", "map", "data/*.txt", "results", "--fn", "fn.py:measure", "--site", "one")
    assert r.code == 1
    summary = json.loads(r.out)
    assert (summary["files"], summary["ok"], summary["failed"]) == (12, 10, 2)
    r = cli("--json", "status", summary["run_id"])
    info = json.loads(r.out)
    assert info["state"] == "failed"
    assert info["error"] == "2 of 12 files failed (see results/index.csv)"
    assert info["output"] == "results"
    assert Path(os.environ["HPCSCALE_RUNS_DIR"], summary["run_id"], "report.html").exists()
