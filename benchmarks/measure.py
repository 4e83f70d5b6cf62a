"""Measurements outside the contestants: SLURM's own job start, the job and
worker timelines from logs, the queue, and the machine.

Times are epoch seconds. Worker logs carry dask's ``asctime`` (local time, ms);
slurmctld's log carries ISO times with ms (``LogTimeFormat=iso8601_ms``, the
default). Reading slurmctld's log needs the rights the testbed gives root;
without them the submit and allocation times are simply left out.
"""

from __future__ import annotations

import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

TESTBED_CONF = Path("/var/lib/hpcscale-testbed/etc/slurm.conf")
_WORKER_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (\S+) - \w+ - +(.*)$")
_CTLD_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})\] (.*)$")


def slurm_env() -> dict[str, str] | None:
    """The environment for the testbed's SLURM commands, or None when it is not up."""
    env = dict(os.environ)
    if "SLURM_CONF" not in env and TESTBED_CONF.is_file():
        env["SLURM_CONF"] = str(TESTBED_CONF)
    if "SLURM_CONF" not in env or shutil.which("sinfo") is None:
        return None
    try:
        out = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%t"], env=env, text=True,
                             capture_output=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0 or not any(s in out.stdout for s in ("idle", "mix", "alloc")):
        return None
    return env


def testbed_problem() -> str:
    if shutil.which("sinfo") is None:
        return "sinfo is not installed"
    if "SLURM_CONF" not in os.environ and not TESTBED_CONF.is_file():
        return f"no SLURM_CONF and no testbed config at {TESTBED_CONF} (scripts/testbed up)"
    return "the debug partition has no node up (scripts/testbed status)"


# -- SLURM's own job start --------------------------------------------------------------------


def slurm_start(env: dict[str, str], workdir: Path, trials: int = 3,
                timeout: float = 120.0) -> dict[str, Any]:
    """Seconds from the sbatch call to a trivial job's first action (it writes the time).

    The job asks for what one worker job asks for (1 CPU, 1 GiB, partition debug).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    samples: list[float] = []
    for i in range(trials):
        wait_queue_empty(env, name_prefix="bench-start-")
        stamp = workdir / f"slurm-start-{i}.stamp"
        stamp.unlink(missing_ok=True)
        script = workdir / "slurm-start.sh"
        script.write_text(f"#!/bin/sh\ndate +%s.%N > {stamp}.tmp && mv {stamp}.tmp {stamp}\n")
        name = f"bench-start-{secrets.token_hex(3)}"
        t0 = time.time()
        subprocess.run(["sbatch", "--parsable", "-p", "debug", "-c", "1", "--mem=1024M",
                        "-t", "00:02:00", "-J", name, "-o", "/dev/null", str(script)],
                       env=env, check=True, capture_output=True, text=True, timeout=60)
        deadline = t0 + timeout
        while not stamp.is_file() and time.time() < deadline:
            time.sleep(0.01)
        if not stamp.is_file():
            cancel(env, name=name)
            raise RuntimeError(f"SLURM did not start a trivial job within {timeout:.0f} s")
        samples.append(float(stamp.read_text().strip()) - t0)
    wait_queue_empty(env, name_prefix="bench-start-")
    return {"samples_s": samples, "median_s": statistics.median(samples)}


# -- the queue ---------------------------------------------------------------------------------


def queue(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(job id, name, state) of every job in the queue."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T"], env=env, text=True,
                         capture_output=True, timeout=30, check=False)
    rows = []
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            rows.append((parts[0], parts[1], parts[2]))
    return rows


def ours(env: dict[str, str], *, name_prefix: str | None = None,
         names: Iterable[str] = (), ids: Iterable[str] = ()) -> list[str]:
    wanted_names, wanted_ids = set(names), set(ids)
    return [i for i, n, _ in queue(env)
            if i in wanted_ids or n in wanted_names
            or (name_prefix is not None and n.startswith(name_prefix))]


def cancel(env: dict[str, str], *, name: str | None = None, ids: Iterable[str] = ()) -> None:
    cmd = ["scancel"] + ([f"--name={name}"] if name else []) + list(ids)
    if len(cmd) > 1:
        subprocess.run(cmd, env=env, capture_output=True, timeout=30, check=False)


def wait_queue_empty(env: dict[str, str], *, timeout: float = 90.0, **which: Any) -> list[str]:
    """Wait until none of the jobs ``which`` selects is queued; those left at ``timeout``."""
    deadline = time.time() + timeout
    left = ours(env, **which)
    while left and time.time() < deadline:
        time.sleep(0.25)
        left = ours(env, **which)
    return left


# -- logs ----------------------------------------------------------------------------------------


def _local_epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def worker_events(texts: Iterable[str]) -> dict[str, list[float]]:
    """Epoch times of worker life events in dask log text: nanny and worker starts,
    registrations with the scheduler."""
    events: dict[str, list[float]] = {"nanny_start": [], "worker_start": [], "registered": []}
    for text in texts:
        for line in text.splitlines():
            m = _WORKER_LINE.match(line)
            if not m:
                continue
            stamp, logger, message = m.groups()
            if logger == "distributed.nanny" and message.startswith("Start Nanny at"):
                events["nanny_start"].append(_local_epoch(stamp))
            elif logger == "distributed.worker" and message.startswith("Start worker at"):
                events["worker_start"].append(_local_epoch(stamp))
            elif logger == "distributed.worker" and message.startswith("Registered to"):
                events["registered"].append(_local_epoch(stamp))
    return {k: sorted(v) for k, v in events.items()}


def log_job_ids(directory: Path | None) -> list[str]:
    """SLURM job ids in the names of the job logs (``NAME-JOBID.err``): every job a run
    submitted, replacements and lost ones included."""
    if directory is None or not directory.is_dir():
        return []
    found = {m.group(1) for p in directory.iterdir()
             if (m := re.search(r"-(\d+)\.(?:err|out)$", p.name))}
    return sorted(found, key=int)


def read_logs(directory: Path | None) -> list[str]:
    if directory is None or not directory.is_dir():
        return []
    return [p.read_text(errors="replace") for p in sorted(directory.glob("*.err"))]


class CtldLog:
    """slurmctld's log from a point on: the submit and allocation time of jobs."""

    def __init__(self, env: dict[str, str] | None) -> None:
        self.path = _ctld_log_path(env)
        self.offset = self._size()

    def _size(self) -> int:
        try:
            return self.path.stat().st_size if self.path else 0
        except OSError:
            return 0

    def jobs(self, ids: Iterable[str]) -> dict[str, dict[str, float]]:
        """Job id -> {"submit": t, "allocate": t} for what the log says since creation."""
        wanted = set(ids)
        found: dict[str, dict[str, float]] = {}
        if self.path is None or not wanted:
            return found
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return found
        for line in text.splitlines():
            m = _CTLD_LINE.match(line)
            if not m:
                continue
            when = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").timestamp()
            job = re.search(r"JobId=(\d+)", m.group(2))
            if not job or job.group(1) not in wanted:
                continue
            event = ("submit" if "_slurm_rpc_submit_batch_job" in m.group(2)
                     else "allocate" if ("sched: Allocate" in m.group(2)
                                        or "backfill: Started" in m.group(2)) else None)
            if event:
                found.setdefault(job.group(1), {}).setdefault(event, when)
        return found


def _ctld_log_path(env: dict[str, str] | None) -> Path | None:
    if env is None:
        return None
    conf = Path(env.get("SLURM_CONF", ""))
    try:
        text = conf.read_text()
    except OSError:
        return None
    m = re.search(r"^SlurmctldLogFile=(\S+)", text, re.MULTILINE)
    path = Path(m.group(1)) if m else None
    return path if path and os.access(path, os.R_OK) else None


# -- memory --------------------------------------------------------------------------------------

# What an hpcscale worker imports before its first task (hpcscale.worker.MODULES
# where that exists), for the idle estimate below.
HPCSCALE_WORKER_MODULES = ("numpy", "scipy.ndimage", "numcodecs", "zarr", "hpcscale.io.output",
                           "hpcscale.ops")
_IDLE_CODE = """
import importlib, sys
import distributed.cli.dask_worker, distributed.worker, psutil
try:
    from hpcscale.backends.worker import MODULES
except ImportError:
    MODULES = ()
for name in [*sys.argv[1:], *MODULES]:
    importlib.import_module(name)
print(psutil.Process().memory_info().rss)
"""


def idle_estimate(modules: Iterable[str], env: dict[str, str]) -> int | None:
    """Resident bytes of a fresh Python that imported a dask worker and ``modules``
    (plus hpcscale's worker warm-up modules): an idle worker with its libraries."""
    import sys

    try:
        out = subprocess.run([sys.executable, "-c", _IDLE_CODE, *modules], env=env,
                             text=True, capture_output=True, timeout=120, check=True)
        return int(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


# -- the machine -------------------------------------------------------------------------------


def machine(env: dict[str, str] | None) -> dict[str, Any]:
    import importlib.metadata as md

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        mem = 0
    versions = {}
    for dist in ("hpcscale", "dask", "distributed", "dask-jobqueue", "dask-image", "zarr",
                 "numcodecs", "numpy", "scipy", "xarray"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            versions[dist] = None
    repo = Path(__file__).resolve().parents[1]
    git = _run(["git", "-C", str(repo), "rev-parse", "HEAD"])
    dirty = _run(["git", "-C", str(repo), "status", "--porcelain", "--", "src"])
    slurm = _run(["sinfo", "-V"], env) if env else None
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": git,
        "src_modified": bool(dirty),
        "slurm": slurm,
        "load_average": os.getloadavg(),
    }


def _run(cmd: list[str], env: dict[str, str] | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, env=env, text=True, capture_output=True, timeout=20,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
