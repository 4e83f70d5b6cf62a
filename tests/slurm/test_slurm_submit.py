"""`submit` end to end on the real SLURM testbed: no mocks of sbatch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from helpers import Cli, blocking_zarr, write_spec

pytestmark = pytest.mark.slurm


def _input(tmp_path: Path, shape: tuple[int, ...] = (24, 40, 30),
           chunks: tuple[int, ...] = (4, 40, 30)) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(1).normal(10, 3, shape).astype("float32")
    path = tmp_path / "in.zarr"
    arr = zarr.create_array(path, shape=shape, chunks=chunks, dtype="float32")
    arr[...] = data
    return path, data


def _spec(tmp_path: Path, inp: Path, out: Path, name: str = "job.toml",
          extra: str = "") -> Path:
    spec = tmp_path / name
    spec.write_text(f"""
description = "mean along axis 0"
[input]
path = "{inp}"
[[steps]]
reduce = "mean"
axis = [0]
{extra}
[output]
path = "{out}"
""")
    return spec


def _squeue() -> str:
    """The jobs of this test's own runs (others may share the testbed)."""
    runs = Path(os.environ["HPCSCALE_RUNS_DIR"])
    names = [f"hpcscale-{p.name}" for p in runs.iterdir()] if runs.is_dir() else []
    if not names:
        return ""
    return subprocess.run(["squeue", "-h", "-o", "%i %j %T", "--name=" + ",".join(names)],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_submit_three_jobs_on_three_nodes_equals_numpy(
    testbed: Path, cli: Cli, tmp_path: Path
) -> None:
    inp, data = _input(tmp_path)
    out = tmp_path / "mean.zarr"
    r = cli("--json", "submit", str(_spec(tmp_path, inp, out)), "--site", "testbed",
            "--jobs", "3")
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert len(summary["jobs"]) == 3
    assert summary["workers"] == 3
    # each worker ran on its own node: three namespace addresses
    assert len(summary["nodes"]) == 3, summary["nodes"]
    assert all(n.startswith("10.197.0.") for n in summary["nodes"])
    result = xr.open_zarr(out)
    (name,) = result.data_vars
    np.testing.assert_allclose(result[name].values, data.astype("float64").mean(axis=0),
                               rtol=1e-6)
    # every job gone, or being ended by SLURM (COMPLETING)
    assert [ln for ln in _squeue().splitlines() if not ln.endswith(" COMPLETING")] == []


def test_local_and_testbed_give_the_same_numbers(
    testbed: Path, cli: Cli, tmp_path: Path
) -> None:
    inp, _ = _input(tmp_path, shape=(16, 20, 20), chunks=(4, 10, 20))
    local_out, slurm_out = tmp_path / "local.zarr", tmp_path / "slurm.zarr"
    assert cli("submit", str(_spec(tmp_path, inp, local_out, "a.toml")),
               "--site", "local").code == 0
    assert cli("submit", str(_spec(tmp_path, inp, slurm_out, "b.toml")),
               "--site", "testbed", "--jobs", "2").code == 0
    a, b = xr.open_zarr(local_out), xr.open_zarr(slurm_out)
    (name,) = a.data_vars
    np.testing.assert_array_equal(a[name].values, b[name].values)


def _start_driver(tmp_path: Path, spec: Path) -> subprocess.Popen[str]:
    env = dict(os.environ)
    # a run that cannot finish on its own: a task blocks on a chunk (see _slow_spec)
    return subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "submit", str(spec), "--site", "testbed",
         "--jobs", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,
    )


def _wait_for_running_jobs(n: int, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = [ln for ln in _squeue().splitlines() if ln.endswith("RUNNING")]
        if len(running) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"driver exited early: {proc.communicate()}")
        time.sleep(0.5)
    pytest.fail(f"jobs did not start: {_squeue()}")


def _wait_queue_empty(timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    left = _squeue()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _squeue()
    return left


def _slow_spec(tmp_path: Path) -> Path:
    """A run that cannot finish on its own: one input chunk is a named pipe nobody
    writes, so a task blocks on it however fast the machine is."""
    inp = tmp_path / "blocked.zarr"
    blocking_zarr(inp)
    return write_spec(tmp_path / "slow.toml", inp, tmp_path / "slow.zarr")


def test_ctrl_c_leaves_no_job_behind(testbed: Path, tmp_path: Path) -> None:
    proc = _start_driver(tmp_path, _slow_spec(tmp_path))
    _wait_for_running_jobs(3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert _wait_queue_empty() == ""


def test_kill_9_then_cleanup_leaves_no_job_behind(testbed: Path, cli: Cli, tmp_path: Path) -> None:
    proc = _start_driver(tmp_path, _slow_spec(tmp_path))
    _wait_for_running_jobs(3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert len(_squeue().splitlines()) == 3  # orphans: the driver could not clean up
    r = cli("cleanup")
    assert r.code == 0, r
    assert "cancelled 3 orphaned job(s)" in r.out
    assert _wait_queue_empty() == ""
    runs = cli("--json", "runs")
    assert json.loads(runs.out)[-1]["state"] == "orphaned"
