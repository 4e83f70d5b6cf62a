"""Batch mode on the real SLURM testbed: the script runs with nobody attached."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from helpers import Cli, blocking_zarr, feed_fifo, fifo_reader

pytestmark = pytest.mark.slurm


def _blocking_spec(tmp_path: Path) -> tuple[np.ndarray, Path, bytes]:
    """A mean over an input whose one chunk is a named pipe (conftest.blocking_zarr)."""
    data, fifo, payload = blocking_zarr(tmp_path / "in.zarr")
    # relative paths: the script's --chdir makes them resolve where it was written
    (tmp_path / "job.toml").write_text('[input]\npath = "in.zarr"\n[[steps]]\nreduce = "mean"\n'
                                       'axis = [0]\n[output]\npath = "out.zarr"\n')
    return data, fifo, payload


def _status(cli: Cli, run_id: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    r = cli("--json", "status", run_id)
    assert r.code == 0, r
    return json.loads(r.out)  # type: ignore[no-any-return]


def _queue(run_id: str) -> str:
    return subprocess.run(["squeue", "-h", "-o", "%i %j %T", f"--name=hpcscale-{run_id}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def _wait_queue_empty(run_id: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    left = _queue(run_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _queue(run_id)
    return left


def test_plain_sbatch_runs_to_correct_zarr_and_status_follows(
    testbed: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    # one input chunk is a named pipe: the run computes until the test feeds it, so
    # status sees it running however fast the machine is
    data, fifo, payload = _blocking_spec(tmp_path)
    script = tmp_path / "run.sbatch"
    r = cli("--json", "sbatch", "job.toml", "--site", "testbed", "--jobs", "2", "-o",
            str(script), "--summary-file", "summary.json")
    assert r.code == 0, r
    run_id = json.loads(r.out)["run_id"]
    assert _status(cli, run_id)["state"] == "written"

    # submitted by hand, as a user would: not through hpcscale
    sub = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True,
                         check=True, cwd="/")
    job_id = sub.stdout.strip().split(";")[0]

    seen: list[str] = []
    deadline = time.monotonic() + 300
    info: dict = {}  # type: ignore[type-arg]
    held: int | None = None
    while time.monotonic() < deadline:
        info = _status(cli, run_id)
        if not seen or seen[-1] != info["state"]:
            seen.append(info["state"])
        if info["state"] in ("done", "failed", "lost", "cancelled"):
            break
        if info["state"] == "running" and held is None:
            held = fifo_reader(fifo)  # a task waits for the chunk: let the run end
            feed_fifo(fifo, payload, held)
        time.sleep(0.5)
    assert info["state"] == "done", (seen, info, cli("logs", run_id).out)
    assert seen[0] in ("pending", "starting"), seen  # queued or just started
    assert "running" in seen, seen
    assert _wait_queue_empty(run_id) == ""  # the batch job ended too, nothing left
    info = _status(cli, run_id)
    assert info["state"] == "done"
    assert info["batch_job"] == job_id
    assert info["exit_code"] == 0
    assert info["progress"].endswith("tasks")
    assert info["forward"].startswith("ssh -N -L 8787:127.0.0.1:")

    result = xr.open_zarr(tmp_path / "out.zarr")
    (name,) = result.data_vars
    want = data.astype("float64").mean(axis=0)
    np.testing.assert_allclose(result[name].values, want, rtol=1e-6)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["exit_code"] == 0
    assert summary["state"] == "done"
    assert len(summary["jobs"]) == 2

    logs = cli("logs", run_id)
    assert logs.code == 0, logs
    assert f"driver-{job_id}.out" in logs.out
    assert "dashboard" in logs.out
    assert "ssh -N -L 8787:127.0.0.1:" in logs.out  # through the login node to the compute node
    assert "scheduler on interface eth0" in logs.out  # the compute nodes', not hpcsbr0
    assert "done in" in logs.out


def test_cancel_of_a_running_batch_run_leaves_nothing(
    testbed: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _blocking_spec(tmp_path)  # nobody feeds the pipe: still computing when cancelled
    r = cli("--json", "sbatch", "job.toml", "--site", "testbed", "--jobs", "1", "--submit")
    assert r.code == 0, r
    sub = json.loads(r.out)
    run_id, job_id = sub["run_id"], sub["job_id"]
    first = _status(cli, run_id)
    assert first["state"] in ("pending", "starting", "running"), first
    assert first["batch_job"] == job_id

    deadline = time.monotonic() + 300  # a bound for a stuck testbed, not a speed
    info: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        info = _status(cli, run_id)
        if info["state"] == "running" or info["state"] in ("done", "failed", "lost"):
            break
        time.sleep(0.5)
    assert info["state"] == "running", (info, cli("logs", run_id).out)
    assert len(info["jobs"]) == 2, info  # the batch driver and its worker job
    assert info["jobs"][job_id].endswith("(batch driver)")

    r = cli("cancel", run_id)
    assert r.code == 0, r
    assert job_id in r.out
    assert _wait_queue_empty(run_id, timeout=20) == ""
    assert _status(cli, run_id)["state"] == "cancelled"
