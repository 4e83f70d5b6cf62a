"""Faults a run survives on the real testbed: a worker job cancelled mid-run, and a
walltime much shorter than the work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from scipy import ndimage

from helpers import Cli, write_profile

pytestmark = pytest.mark.slurm

# median size 7 over one 128x128 plane (+ halo) takes ~0.5 s of one core here
SHAPE = (1, 128, 128)


def _job(tmp_path: Path, planes: int) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(5).random((planes, 128, 128)).astype("float32")
    inp = tmp_path / "in.zarr"
    zarr.create_array(inp, shape=data.shape, chunks=SHAPE, dtype="float32")[...] = data
    spec = tmp_path / "job.toml"
    spec.write_text(f"""
[input]
path = "{inp}"
[[steps]]
filter = "median"
size = 7
[[steps]]
reduce = "mean"
axis = [0]
[output]
path = "{tmp_path / 'out.zarr'}"
""")
    return spec, ndimage.median_filter(data, size=7).astype("float64").mean(axis=0)


def _squeue(fmt: str = "%i %T") -> list[list[str]]:
    out = subprocess.run(["squeue", "-h", "-o", fmt], capture_output=True, text=True,
                         check=True).stdout
    return [ln.split() for ln in out.splitlines()]


def _check(tmp_path: Path, want: np.ndarray) -> None:
    got = xr.open_zarr(tmp_path / "out.zarr")
    (name,) = got.data_vars
    np.testing.assert_allclose(got[name].values, want, rtol=1e-5)


def test_scancel_of_one_of_three_jobs_mid_run(testbed: Path, tmp_path: Path) -> None:
    spec, want = _job(tmp_path, planes=60)
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "submit", str(spec), "--site", "testbed",
         "--jobs", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ), start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = [j for j, s in _squeue() if s == "RUNNING"]
        if len(running) == 3:
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"3 jobs did not start: {_squeue()}")
    time.sleep(6)  # let the workers take tasks
    victim = running[0]
    subprocess.run(["scancel", victim], check=True)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    (run,) = Path(os.environ["HPCSCALE_RUNS_DIR"]).iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert victim in summary["lost_jobs"], summary
    assert f"job {victim} was lost" in err
    assert "KilledWorker" not in err
    _check(tmp_path, want)


@pytest.mark.timeout(480)  # the work must outlast a 60 s walltime, several times over
def test_walltime_shorter_than_the_work_completes(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path
) -> None:
    # The short partition's MaxTime is 1 minute; the work takes well over that.
    write_profile(user_sites, "short", 'extends = "testbed"\n[slurm]\npartition = "short"\n'
                  'walltime = "00:01:00"\n')
    # filters merge the 1-plane chunks (towards 4x the reach), so it takes many planes
    spec, want = _job(tmp_path, planes=800)
    t0 = time.monotonic()
    r = cli("--json", "submit", str(spec), "--site", "short", "--jobs", "2")
    took = time.monotonic() - t0
    assert r.code == 0, r
    assert took > 60, f"the work ({took:.0f} s) must outlast the 60 s walltime"
    summary = json.loads(r.out)
    assert summary["retired_jobs"], summary  # workers retired before their walltime...
    assert len(summary["jobs"]) >= 2
    assert not summary["lost_jobs"], summary  # ...and none was killed by SLURM
    assert "KilledWorker" not in r.err
    _check(tmp_path, want)


def test_job_that_can_never_start_is_reported_with_its_reason(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path
) -> None:
    failed = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "false"],
                            capture_output=True, text=True, check=True).stdout.strip()
    deadline = time.monotonic() + 30
    while any(j == failed for j, _ in _squeue()) and time.monotonic() < deadline:
        time.sleep(0.5)
    write_profile(user_sites, "never", 'extends = "testbed"\n[slurm]\n'
                  f'extra_directives = ["--dependency=afterok:{failed}"]\n')
    spec, _ = _job(tmp_path, planes=8)
    t0 = time.monotonic()
    r = cli("submit", str(spec), "--site", "never", "--jobs", "2")
    took = time.monotonic() - t0
    assert r.code == 1, r
    assert "can never start: SLURM says DependencyNeverSatisfied" in r.err
    assert took < 30, f"reported after {took:.0f} s; the watcher polls every 3 s"
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.err
    assert errors[0] == r.err.strip().splitlines()[-1]
    assert [j for j in _squeue() if j[1] != "COMPLETING"] == []


def test_sbatch_refusal_reaches_the_user_verbatim(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path
) -> None:
    write_profile(user_sites, "gres", 'extends = "testbed"\n[slurm]\n'
                  'extra_directives = ["--gres=gpu:1"]\n')
    spec, _ = _job(tmp_path, planes=8)
    t0 = time.monotonic()
    r = cli("submit", str(spec), "--site", "gres", "--jobs", "1")
    assert r.code == 1, r
    assert ("error: sbatch refused the worker job: sbatch: error: Invalid generic resource "
            "(gres) specification") in r.err
    assert time.monotonic() - t0 < 30
    assert "dashboard http://127.0.0.1:" in r.err


def _filter_job(tmp_path: Path, out: Path, planes: int = 48) -> Path:
    """A median filter written plane by plane: one output block per plane."""
    inp = tmp_path / "in.zarr"
    if not inp.exists():
        data = np.random.default_rng(9).random((planes, 128, 128)).astype("float32")
        zarr.create_array(inp, shape=data.shape, chunks=SHAPE, dtype="float32")[...] = data
    spec = tmp_path / f"{out.stem}.toml"
    spec.write_text(f"""
[input]
path = "{inp}"
[[steps]]
filter = "median"
size = 5
[output]
path = "{out}"
""")
    return spec


def _chunk_files(store: Path) -> dict[str, bytes]:
    """The data chunks (the metadata carries times, so it differs between runs)."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("c/**/*"))
            if p.is_file()}


def test_kill_9_of_the_driver_then_rerun_resumes_bit_identical(
    testbed: Path, cli: Cli, tmp_path: Path
) -> None:
    out = tmp_path / "out.zarr"
    spec = _filter_job(tmp_path, out)
    manifest = out / ".hpcscale-manifest"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "submit", str(spec), "--site", "testbed",
         "--jobs", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ), start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.is_file() and len(manifest.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"no blocks recorded: {proc.communicate()}")
    os.killpg(proc.pid, 9)
    proc.communicate(timeout=30)
    recorded = len(manifest.read_text().splitlines())
    assert cli("cleanup").code == 0  # the orphaned worker jobs (else they end on their own)

    plan = cli("plan", str(spec), "--site", "testbed", "--jobs", "3")
    assert "resume: " in plan.out, plan
    r = cli("--json", "submit", str(spec), "--site", "testbed", "--jobs", "3")
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert 4 <= recorded <= summary["blocks_resumed"] < summary["blocks"]  # fewer computed
    assert not list(out.rglob("*.partial"))

    ref = tmp_path / "ref.zarr"
    assert cli("submit", str(_filter_job(tmp_path, ref)), "--site", "local").code == 0
    chunks = _chunk_files(out)
    assert len(chunks) == summary["blocks"]
    assert chunks == _chunk_files(ref)  # bit-identical to an uninterrupted run


def test_a_full_disk_on_the_testbed_is_one_line_exit_1(
    testbed: Path, cli: Cli, tmp_path: Path, small_disk: Path
) -> None:
    out = small_disk / "out.zarr"
    r = cli("submit", str(_filter_job(tmp_path, out, planes=24)), "--site", "testbed",
            "--jobs", "2")
    assert r.code == 1, r
    (line,) = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert f"error: output {out}: disk full" in line
    assert "the result needs up to 1.50MiB uncompressed" in line
    assert "Traceback" not in r.err
    meta = json.loads((out / "zarr.json").read_text())
    assert meta["attributes"]["hpcscale"]["complete"] is False
