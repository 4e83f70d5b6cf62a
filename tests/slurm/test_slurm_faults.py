"""Faults a run survives on the real testbed: a worker job cancelled mid-run, and a
walltime much shorter than the work."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from scipy import ndimage

from helpers import (
    REPO,
    Cli,
    blocking_zarr,
    feed_fifo,
    fifo_reader,
    write_profile,
    write_spec,
)

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


def _squeue(name: str, fmt: str = "%i %T") -> list[list[str]]:
    """This run's jobs only (named ``name``): others may share the testbed."""
    out = subprocess.run(["squeue", "-h", "-o", fmt, "--name=" + name], capture_output=True,
                         text=True, check=True).stdout
    return [ln.split() for ln in out.splitlines()]


def _queued(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-o", "%T", "-j", job_id], capture_output=True,
                         text=True, check=False).stdout
    return bool(out.strip())


def _check(tmp_path: Path, want: np.ndarray) -> None:
    got = xr.open_zarr(tmp_path / "out.zarr")
    (name,) = got.data_vars
    np.testing.assert_allclose(got[name].values, want, rtol=1e-5)


class Driver:
    """``hpcscale submit`` in a subprocess; its stderr read line by line as it
    comes, so a test waits for what the run says (events), never for a time."""

    def __init__(self, spec: Path, jobs: int = 3, site: str = "testbed") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hpcscale", "submit", str(spec), "--site", site,
             "--jobs", str(jobs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ), start_new_session=True)
        self.lines: list[str] = []
        self._done = False
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_for(": dashboard ", timeout=120)
        self.run_id = line.split()[1].rstrip(":")
        self.job_name = f"hpcscale-{self.run_id}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float, count: int = 1) -> str:
        """The ``count``-th line of stderr containing ``text``; fails if the run ends first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [ln for ln in self.lines if text in ln]
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    self.kill()
                    why = "the run ended" if self._done else "timeout"
                    pytest.fail(f"no line with {text!r} ({why}): {''.join(self.lines)}")
                self._cond.wait(left)

    def finish(self, timeout: float = 240) -> tuple[dict[str, Any], str]:
        """The run's summary and all of stderr, once the run ended (with exit code 0)."""
        assert self.proc.stdout is not None
        self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        with self._cond:
            while not self._done:
                self._cond.wait(5)
            err = "".join(self.lines)
        assert self.proc.returncode == 0, err
        run = Path(os.environ["HPCSCALE_RUNS_DIR"]) / self.run_id
        return json.loads((run / "summary.json").read_text()), err

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)


def _blocking_job(tmp_path: Path, planes: int = 12) -> tuple[Path, Path, bytes, np.ndarray]:
    """A mean over planes whose one input chunk is a named pipe: the task reading it
    blocks until the test writes the chunk's bytes, so the run is computing, and
    cannot end, until the test says so."""
    inp = tmp_path / "in.zarr"
    data, chunk, payload = blocking_zarr(inp, planes)
    spec = write_spec(tmp_path / "job.toml", inp, tmp_path / "out.zarr")
    return spec, chunk, payload, data.astype("float64").mean(axis=0)


def test_scancel_of_one_of_three_jobs_mid_run(testbed: Path, tmp_path: Path) -> None:
    spec, fifo, payload, want = _blocking_job(tmp_path)
    driver = Driver(spec)
    try:
        held = fifo_reader(fifo)  # computing: a task waits for the chunk, the run cannot end
        running = [j for j, s in _squeue(driver.job_name) if s == "RUNNING"]
        assert len(running) == 3, _squeue(driver.job_name)
        victim = running[0]
        subprocess.run(["scancel", victim], check=True)
        driver.wait_for(f"job {victim} was lost", timeout=120)
        feed_fifo(fifo, payload, held)
        summary, err = driver.finish()
    finally:
        driver.kill()
    assert victim in summary["lost_jobs"], summary
    assert f"replacing lost job {victim}" in err
    assert "KilledWorker" not in err
    _check(tmp_path, want)


def _ctld(action: str) -> None:
    subprocess.run([str(REPO / "scripts" / "testbed"), "ctld", action], check=True,
                   capture_output=True, text=True)


OUTAGE_S = 15.0


def test_a_controller_outage_mid_run_cancels_and_submits_nothing(
    testbed: Path, tmp_path: Path
) -> None:
    spec, fifo, payload, want = _blocking_job(tmp_path)
    driver = Driver(spec)
    try:
        held = fifo_reader(fifo)  # the middle of the run: a task waits for the chunk
        first = sorted(j for j, s in _squeue(driver.job_name) if s == "RUNNING")
        assert len(first) == 3, _squeue(driver.job_name)
        try:
            _ctld("stop")
            down = time.monotonic()
            driver.wait_for("SLURM did not answer", timeout=60)
            # the fault itself: the controller stays away for OUTAGE_S seconds
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down)))
        finally:
            _ctld("start")
        driver.wait_for("SLURM answers again", timeout=120)
        # still computing (the chunk is not written yet), on the same three jobs
        assert sorted(j for j, s in _squeue(driver.job_name) if s == "RUNNING") == first
        assert driver.proc.poll() is None
        feed_fifo(fifo, payload, held)
        summary, err = driver.finish()
    finally:
        driver.kill()
    assert sorted(summary["jobs"]) == first, summary  # none submitted...
    assert summary["lost_jobs"] == [], summary  # ...none cancelled as lost
    assert "was lost" not in err
    assert "replacing" not in err
    assert summary["workers"] == 3
    _check(tmp_path, want)


@pytest.mark.timeout(480)  # the work must outlast a 60 s walltime, several times over
def test_walltime_shorter_than_the_work_completes(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path
) -> None:
    # The short partition's MaxTime is 1 minute; the work takes well over that. (A run
    # held by a named-pipe chunk instead hung now and then: a worker retiring while its
    # task waits on the pipe stays alive until SLURM ends its job; see issue 16's note.)
    write_profile(user_sites, "short", 'extends = "testbed"\n[slurm]\npartition = "short"\n'
                  'walltime = "00:01:00"\n')
    # filters merge the 1-plane chunks (towards 4x the reach), so it takes many planes
    spec, want = _job(tmp_path, planes=800)
    r = cli("--json", "submit", str(spec), "--site", "short", "--jobs", "2")
    assert r.code == 0, r
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
    deadline = time.monotonic() + 180
    while _queued(failed):  # until the job failed: its dependants can never start
        if time.monotonic() > deadline:
            pytest.fail(f"job {failed} (`false`) still queued after 180 s")
        time.sleep(0.5)
    write_profile(user_sites, "never", 'extends = "testbed"\n[slurm]\n'
                  f'extra_directives = ["--dependency=afterok:{failed}"]\n')
    spec, _ = _job(tmp_path, planes=8)
    r = cli("submit", str(spec), "--site", "never", "--jobs", "2")
    assert r.code == 1, r
    # SLURM's reason, at once -- not "no job started within 300 s" (max_pending) nor
    # "no worker connected within 180 s": those are the messages of the timeouts
    assert "can never start: SLURM says DependencyNeverSatisfied" in r.err
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.err
    assert errors[0] == r.err.strip().splitlines()[-1]
    (run,) = Path(os.environ["HPCSCALE_RUNS_DIR"]).iterdir()
    assert [j for j in _squeue(f"hpcscale-{run.name}") if j[1] != "COMPLETING"] == []


def test_sbatch_refusal_reaches_the_user_verbatim(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path
) -> None:
    write_profile(user_sites, "gres", 'extends = "testbed"\n[slurm]\n'
                  'extra_directives = ["--gres=gpu:1"]\n')
    spec, _ = _job(tmp_path, planes=8)
    r = cli("submit", str(spec), "--site", "gres", "--jobs", "1")
    assert r.code == 1, r
    # sbatch's own words, not the 180 s wait for workers that never come
    assert ("error: sbatch refused the worker job: sbatch: error: Invalid generic resource "
            "(gres) specification") in r.err
    assert "no worker connected within" not in r.err
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
    # the last plane's chunk is a named pipe nobody writes: blocks away from it are
    # written, the run cannot finish, however fast the machine is
    planes = zarr.open_array(tmp_path / "in.zarr", mode="r").shape[0]
    last = tmp_path / "in.zarr" / "c" / str(planes - 1) / "0" / "0"
    payload = last.read_bytes()
    last.unlink()
    os.mkfifo(last)
    manifest = out / ".hpcscale-manifest"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "submit", str(spec), "--site", "testbed",
         "--jobs", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ), start_new_session=True)
    deadline = time.monotonic() + 300  # a bound for a stuck testbed, not a speed
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
    last.unlink()  # the input as it was, for the re-run and the reference
    last.write_bytes(payload)

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


def test_workers_that_die_before_connecting_show_their_error_and_node(  # type: ignore[no-untyped-def]
    testbed: Path, cli, tmp_path: Path, user_sites: Path
) -> None:
    # the profile sends the workers' logs elsewhere; their interface does not exist
    logs = tmp_path / "site-logs"
    write_profile(user_sites, "badif", 'extends = "testbed"\n[slurm]\n'
                  f'worker_interface = "tbr0"\nlog_directory = "{logs}"\n')
    spec, _ = _job(tmp_path, planes=4)
    r = cli("submit", str(spec), "--site", "badif", "--jobs", "1")
    assert r.code == 1, r
    (line,) = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    found = re.search(r"ended without a worker connecting: job (\d+) on node (c\d): "
                      r"ValueError: 'tbr0' is not a valid network interface\. Valid network "
                      r"interfaces are: \['lo', 'eth0'\] \(log: (\S+)\)$", line)
    assert found, line
    job, _, log = found.groups()
    (run,) = Path(os.environ["HPCSCALE_RUNS_DIR"]).iterdir()
    assert log == str(logs / f"hpcscale-{run.name}-{job}.err")
    assert "no error in the worker logs" not in r.err
