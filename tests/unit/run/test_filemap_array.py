"""``hpcscale map --engine array`` without SLURM: the array's script, and its tasks run
here, each in its own process as SLURM would start it (``python -m
hpcscale.run.filemap.arraytask RUNDIR`` with the array's environment), by a fake
``sbatch``; and ``hpcscale sbatch`` of a ``[map]`` job spec.

The real array on the SLURM testbed is in tests/slurm/test_slurm_filemap.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from helpers import Cli
from hpcscale import slurm
from hpcscale.rundir import RunDir, RunState, list_runs

SRC = Path(__file__).resolve().parents[3] / "src"

FUNCTION = '''
from pathlib import Path

CALLS = Path(__file__).with_name("calls.log")


def measure(path, out_dir):
    with CALLS.open("a") as log:
        log.write(path.name + "\\n")
    n = int(path.read_text())
    if n < 0:
        raise ValueError(f"negative count in {path.name}")
    (out_dir / "n.txt").write_text(str(n))
    return {"n": n}
'''


class FakeArray:
    """``sbatch`` of an array script: runs each task now, one after the other, in a
    process of its own with SLURM's array variables; ``squeue`` then finds nothing."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.scripts: list[str] = []
        self.cancelled: list[list[str]] = []
        self.env = env or {}
        self.codes: list[int] = []

    def submit(self, path: os.PathLike[str] | str) -> str:
        script = Path(path).read_text()
        self.scripts.append(script)
        m = re.search(r"^#SBATCH --array=0-(\d+)%(\d+)$", script, re.MULTILINE)
        assert m, script
        run_dir = shlex_last(script)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
        env["PYTHONPATH"] = str(SRC)
        env.update(self.env)
        for task in range(int(m.group(1)) + 1):
            done = subprocess.run(
                [sys.executable, "-m", "hpcscale.run.filemap.arraytask", run_dir],
                env=env | {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_JOB_ID": "4242",
                           "SLURMD_NODENAME": "node1"},
                capture_output=True, text=True, check=False, timeout=120)
            self.codes.append(done.returncode)
        return "4242"

    def queue(self, job_ids: object = (), *, name: str | None = None) -> dict[str, object]:
        return {}

    def cancel(self, ids: object) -> None:
        self.cancelled.append(list(ids))  # type: ignore[call-overload]


def shlex_last(script: str) -> str:
    return script.strip().splitlines()[-1].split()[-1]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeArray:
    array = FakeArray()
    monkeypatch.setattr(slurm, "available", lambda: False)
    monkeypatch.setattr(slurm, "submit_script", array.submit)
    monkeypatch.setattr(slurm, "queue", array.queue)
    monkeypatch.setattr(slurm, "cancel", array.cancel)
    return array


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "data").mkdir()
    for i in range(7):
        (tmp_path / "data" / f"f{i}.txt").write_text(str(-i if i == 4 else i))
    (tmp_path / "fn.py").write_text(FUNCTION)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _map(cli: Cli, *more: str) -> object:
    return cli("map", "data/*.txt", "results", "--fn", "fn.py:measure", "--engine", "array",
               "--site", "testbed", *more)


def calls(world: Path) -> list[str]:
    log = world / "calls.log"
    names = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return sorted(names)


def test_the_array_processes_every_file_and_a_rerun_only_the_failed(
    cli: Cli, world: Path, fake: FakeArray
) -> None:
    r = _map(cli, "--jobs", "2")
    assert r.code == 1, r
    assert r.err.strip().splitlines()[-1] == "error: 1 of 7 files failed (see results/index.csv)"
    (script,) = fake.scripts
    assert "#SBATCH --array=0-3%2" in script  # 2 at once, 2 tasks per slot
    assert "#SBATCH --job-name=hpcscale-" in script
    assert "#SBATCH --partition=debug" in script
    assert fake.codes == [0, 0, 0, 0]
    assert len(calls(world)) == 7
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert list(index.status.values).count("ok") == 6
    assert index.error.values[4].startswith("ValueError: negative count in f4.txt (fn.py line")
    assert set(index.worker.values) == {f"node1 array task {i}" for i in range(4)}
    assert list(index.n.values[:4]) == [0, 1, 2, 3]
    (rd,) = list_runs()
    status = rd.status()
    assert status.state == RunState.FAILED
    assert status.error == "1 of 7 files failed (see results/index.csv)"
    assert rd.array_script.read_text() == script

    (world / "data" / "f4.txt").write_text("4")
    r = _map(cli)
    assert r.code == 0, r
    assert calls(world) == ["f4.txt"]
    assert "#SBATCH --array=0-0%" in fake.scripts[-1]
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert set(index.status.values) == {"ok"}


def test_a_module_that_does_not_import_in_the_tasks_stops_the_array_in_one_line(
    cli: Cli, world: Path, fake: FakeArray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # importable here (on sys.path), not in the tasks' processes
    (world / "here_only").mkdir()
    (world / "here_only" / "labfn_xyz.py").write_text(FUNCTION)
    monkeypatch.syspath_prepend(str(world / "here_only"))
    r = cli("map", "data/*.txt", "results", "--fn", "labfn_xyz:measure", "--engine", "array",
            "--site", "testbed")
    assert r.code == 1, r
    line = r.err.strip().splitlines()[-1]
    assert line.startswith("error: --fn: module 'labfn_xyz' does not import on the compute "
                           "nodes (array task 0 on node1): ModuleNotFoundError: No module named "
                           "'labfn_xyz' (python ")
    assert line.endswith("; no file was processed")
    assert fake.cancelled  # the whole array
    assert calls(world) == []
    assert not (world / "here_only" / "calls.log").exists()
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    assert set(index.status.values) == {"not run"}


def test_a_task_that_ends_midway_fails_its_file_and_leaves_the_rest(
    cli: Cli, world: Path, fake: FakeArray
) -> None:
    # the function kills its own process at f2.txt: as SLURM would at the walltime
    (world / "fn.py").write_text(FUNCTION.replace(
        "    n = int(path.read_text())",
        "    n = int(path.read_text())\n    if n == 2:\n        import os; os._exit(9)"))
    r = _map(cli, "--jobs", "1")  # 2 tasks: f0 f2 f4 f6 | f1 f3 f5
    assert r.code == 1, r
    assert fake.codes == [9, 0]
    index = xr.open_zarr(world / "results" / "index.zarr").load()
    status = dict(zip(index.file.values, index.status.values, strict=True))
    assert status["data/f2.txt"] == "failed"
    assert "array task 0 ended while processing it" in index.error.values[2]
    assert status["data/f4.txt"] == status["data/f6.txt"] == "not run"
    assert status["data/f1.txt"] == status["data/f3.txt"] == "ok"
    assert "1 of 7 files failed and 2 files were not run (see results/index.csv)" in r.err


def test_the_array_script_is_valid_bash(cli: Cli, world: Path, fake: FakeArray) -> None:
    r = _map(cli)
    assert r.code == 1
    (rd,) = list_runs()
    subprocess.run(["bash", "-n", str(rd.array_script)], check=True)
    if shutil.which("shellcheck") is not None:
        check = subprocess.run(["shellcheck", str(rd.array_script)], capture_output=True,
                               text=True, check=False)
        assert check.returncode == 0, check.stdout
    plan = json.loads(rd.array_plan.read_text())
    assert plan["tasks"] == 6  # 3 at once (testbed's max_jobs) x 2
    assert oct(rd.array_function.stat().st_mode & 0o777) == "0o600"


def test_sbatch_writes_a_map_spec_s_batch_script(cli: Cli, world: Path, fake: FakeArray) -> None:
    spec = world / "count.toml"
    spec.write_text('[map]\nfiles = "data/*.txt"\nfunction = "fn.py:measure"\n'
                    'output = "results"\n')
    r = cli("--json", "sbatch", str(spec), "--site", "testbed")
    assert r.code == 0, r
    data = json.loads(r.out)
    assert f"driver {spec} --site testbed --run-id {data['run_id']}" in data["text"]
    rd = RunDir.existing(data["run_id"])
    assert rd is not None
    assert rd.status().state == RunState.WRITTEN
    assert rd.status().output == "results"
    assert "[map]" in rd.jobspec.read_text()
    assert not (world / "results").exists()  # written by the batch job, not here
