"""``hpcscale map`` on the real SLURM testbed: both engines, failures, resume, and a
module that imports here but not on the compute nodes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import xarray as xr

from helpers import Cli, login_only_module

pytestmark = pytest.mark.slurm

FILES = 200
BAD = {7, 50, 123, 199}  # these files make the function fail

FUNCTION = '''
import os
from pathlib import Path

CALLS = Path(__file__).with_name("calls.log")


def count(path, out_dir):
    with CALLS.open("a") as log:
        log.write(path.name + "\\n")
    n = int(path.read_text())
    if n < 0:
        raise ValueError(f"negative count in {path.name}")
    (out_dir / "n.txt").write_text(str(n))
    return {"n": n, "node": os.environ.get("SLURMD_NODENAME", "")}
'''


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "data").mkdir()
    for i in range(FILES):
        (tmp_path / "data" / f"f{i:03d}.txt").write_text(str(-i if i in BAD else i))
    (tmp_path / "fn.py").write_text(FUNCTION)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def calls(world: Path, log: str = "calls.log") -> list[str]:
    path = world / log
    names = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return sorted(names)


def _squeue() -> list[str]:
    """This test's runs' jobs SLURM is not already ending (others may share the testbed)."""
    runs = Path(os.environ["HPCSCALE_RUNS_DIR"])
    names = [f"hpcscale-{p.name}" for p in runs.iterdir()] if runs.is_dir() else []
    if not names:
        return []
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T", "--name=" + ",".join(names)],
                         capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if not ln.endswith(" COMPLETING")]


def _check_index(world: Path) -> None:
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert index.sizes["file"] == FILES
    failed = [str(f) for f, s in zip(index.file.values, index.status.values, strict=True)
              if s == "failed"]
    assert failed == [f"data/f{i:03d}.txt" for i in sorted(BAD)]
    for i in BAD:
        assert index.error.values[i].startswith(f"ValueError: negative count in f{i:03d}.txt")
    ok = [i for i in range(FILES) if i not in BAD]
    assert [int(index.n.values[i]) for i in ok] == ok
    assert (world / "results" / "f010" / "n.txt").read_text() == "10"
    table = (world / "results" / "index.csv").read_text().splitlines()
    assert len(table) == FILES + 1


@pytest.mark.parametrize("engine", ["dask", "array"])
def test_map_over_200_files_names_the_failures_and_a_rerun_does_only_them(
    engine: str, testbed: Path, cli: Cli, world: Path
) -> None:
    argv = ("map", "data/*.txt", "results", "--fn", "fn.py:count", "--engine", engine,
            "--site", "testbed", "--jobs", "3")
    r = cli(*argv)
    assert r.code == 1, r
    assert r.err.strip().splitlines()[-1] == (
        f"error: {len(BAD)} of {FILES} files failed (see results/index.csv)")
    assert len(calls(world)) == FILES
    _check_index(world)
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    ok = [i for i in range(FILES) if i not in BAD]
    assert all(index.node.values[ok])  # each ran in a SLURM job, on a node
    assert all(index.worker.values)
    assert _squeue() == []

    r = cli(*argv)
    assert r.code == 1, r
    assert calls(world) == [f"f{i:03d}.txt" for i in sorted(BAD)]
    _check_index(world)
    assert _squeue() == []


@pytest.mark.parametrize("engine", ["dask", "array"])
def test_a_module_that_does_not_import_on_the_compute_nodes_is_refused_before_any_file(
    engine: str, testbed: Path, cli: Cli, world: Path, user_sites: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    here_only = world / "here_only"
    site = login_only_module(here_only, "labcount_xyz", FUNCTION, user_sites, monkeypatch)
    r = cli("map", "data/*.txt", "results", "--fn", "labcount_xyz:count", "--engine", engine,
            "--site", site, "--jobs", "2")
    assert r.code == 1, r
    line = r.err.strip().splitlines()[-1]
    assert line.startswith("error: --fn: module 'labcount_xyz' does not import on the ")
    assert "ModuleNotFoundError: No module named 'labcount_xyz'" in line
    assert "(python " in line
    assert calls(here_only) == []  # no file was processed
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert set(index.status.values) == {"not run"}
    assert _squeue() == []


BLOCKING = '''
import time
from pathlib import Path

RELEASE = Path(__file__).with_name("release")


def wait(path, out_dir):
    (out_dir / "started").write_text("")
    while not RELEASE.exists():  # the test never releases it: the run is cancelled
        time.sleep(0.2)
    return {"n": 1}
'''


def test_status_logs_and_cancel_work_on_an_array_run(
    testbed: Path, cli: Cli, world: Path
) -> None:
    import json
    import sys
    import time

    (world / "block.py").write_text(BLOCKING)
    driver = subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "map", "data/*.txt", "results", "--fn",
         "block.py:wait", "--engine", "array", "--site", "testbed", "--jobs", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the events: a task has started a file (its folder holds "started"), and the
        # driver has seen a task running in squeue (it asks every few seconds)
        deadline = time.monotonic() + 180
        info: dict = {}  # type: ignore[type-arg]
        while True:
            assert driver.poll() is None, driver.communicate()
            assert time.monotonic() < deadline, ("no array task running within 180 s", info)
            if list((world / "results").glob("*/started")):
                info = json.loads(cli("--json", "status", "last").out)
                if info["state"] == "running":
                    break
            time.sleep(0.2)
        assert any(s == "RUNNING" for s in info["jobs"].values()), info
        array_id = next(iter(info["jobs"])).split("_")[0]
        logs = cli("--json", "logs", "last")
        assert logs.code == 0
        names = {Path(f["file"]).name for f in json.loads(logs.out)}
        assert f"array-{array_id}_0.out" in names, names
        r = cli("--json", "cancel", "last")
        assert r.code == 0, r
        assert json.loads(r.out)["cancelled"]
        _, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:  # the test failed: the driver cancels its array itself
            driver.terminate()
            try:
                driver.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                driver.kill()
                driver.communicate()
    assert driver.returncode == 130, err
    assert "cancelled with `hpcscale cancel`" in err
    assert _squeue() == []
    info = json.loads(cli("--json", "status", "last").out)
    assert info["state"] == "cancelled"
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert set(index.status.values) == {"not run"}


@pytest.mark.parametrize("engine", ["dask", "array"])
def test_sbatch_runs_a_map_job_spec_inside_slurm(
    engine: str, testbed: Path, cli: Cli, world: Path
) -> None:
    import json
    import time

    (world / "count.toml").write_text(f'''
[map]
files = "data/*.txt"
function = "fn.py:count"
output = "results"
engine = "{engine}"
[run]
site = "testbed"
jobs = 2
''')
    r = cli("--json", "sbatch", "count.toml", "--submit")
    assert r.code == 0, r
    run_id = json.loads(r.out)["run_id"]
    deadline = time.monotonic() + 300  # a bound for a stuck testbed, not a speed
    info: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        info = json.loads(cli("--json", "status", run_id).out)
        if info["state"] in ("done", "failed", "lost", "cancelled") and "exit_code" in info:
            break
        time.sleep(0.5)
    assert info["state"] == "failed", (info, cli("logs", run_id).out)
    assert info["error"] == f"{len(BAD)} of {FILES} files failed (see results/index.csv)"
    assert info["exit_code"] == 1
    _check_index(world)
    assert len(calls(world)) == FILES
    deadline = time.monotonic() + 30
    while _squeue() and time.monotonic() < deadline:  # the batch job itself is ending
        time.sleep(0.5)
    assert _squeue() == []
