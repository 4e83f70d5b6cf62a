"""Batch mode on the real SLURM testbed: the script runs with nobody attached."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from scipy import ndimage

from helpers import Cli

pytestmark = pytest.mark.slurm


def _spec(tmp_path: Path, shape: tuple[int, ...], chunks: tuple[int, ...],
          steps: str) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(3).normal(10, 3, shape).astype("float32")
    inp = tmp_path / "in.zarr"
    arr = zarr.create_array(inp, shape=shape, chunks=chunks, dtype="float32")
    arr[...] = data
    spec = tmp_path / "job.toml"
    # relative paths: the script's --chdir makes them resolve where it was written
    spec.write_text(f'[input]\npath = "in.zarr"\n{steps}\n[output]\npath = "out.zarr"\n')
    return spec, data


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
    # a median first: enough work (a few seconds) for status to see the run computing
    _, data = _spec(tmp_path, (32, 160, 160), (4, 160, 160),
                    '[[steps]]\nfilter = "median"\nsize = 5\n[[steps]]\nreduce = "mean"\n'
                    "axis = [0]")
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
    deadline = time.monotonic() + 80
    info: dict = {}  # type: ignore[type-arg]
    while time.monotonic() < deadline:
        info = _status(cli, run_id)
        if not seen or seen[-1] != info["state"]:
            seen.append(info["state"])
        if info["state"] in ("done", "failed", "lost", "cancelled"):
            break
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
    want = ndimage.median_filter(data, size=5).astype("float64").mean(axis=0)
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
    # minutes of work: still computing when cancelled
    _spec(tmp_path, (60, 128, 128), (1, 128, 128),
          '[[steps]]\nfilter = "median"\nsize = 15\n[[steps]]\nreduce = "mean"\naxis = [0]')
    r = cli("--json", "sbatch", "job.toml", "--site", "testbed", "--jobs", "1", "--submit")
    assert r.code == 0, r
    sub = json.loads(r.out)
    run_id, job_id = sub["run_id"], sub["job_id"]
    first = _status(cli, run_id)
    assert first["state"] in ("pending", "starting"), first
    assert first["batch_job"] == job_id

    deadline = time.monotonic() + 60
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
