"""Following runs after the fact: list, status, cancel, cleanup of orphans.

A run's SLURM jobs are named ``hpcscale-<run id>``, so they can be found in
``squeue`` even when the driver died before it recorded their ids.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from hpcscale import slurm
from hpcscale._fs import pid_alive
from hpcscale.rundir import ACTIVE, RunDir, RunState, RunStatus, list_runs


def find(run: str) -> RunDir:
    """The run named by ``run``: ``last``, a run id or a unique prefix of one."""
    return RunDir.find(run)


def overview() -> list[dict[str, Any]]:
    rows = []
    for r in list_runs():
        st = r.status()
        rows.append({"run_id": r.run_id, "state": str(st.state), "site": st.site or "?",
                     "output": st.output or "?"})
    return rows


def status(run_id: str) -> dict[str, Any]:
    """State of a run (from its driver's ``state.json``) and of its SLURM jobs.

    For a batch run, the batch job is marked ``(batch driver)``; a run whose batch
    job left the queue without its driver recording an end is shown as ``lost``.
    """
    rd = find(run_id)
    unanswered = ""
    try:
        queued = slurm.queue(name=rd.job_name) if slurm.available() else {}
    except slurm.SlurmUnavailable as err:
        # no answer says nothing about the jobs: show the run's own record only
        queued, unanswered = {}, str(err)
    answered = slurm.available() and not unanswered
    state = rd.status()  # read after squeue: a driver that ended has recorded it by now
    batch_job = state.batch_job
    shown = state.state
    error = state.error
    if shown == RunState.WRITTEN and queued:
        shown = RunState.PENDING  # a script submitted by hand: its job is queued
    elif shown in ACTIVE and batch_job and answered and batch_job not in queued:
        shown = RunState.LOST
        error = error or (f"batch job {batch_job} left the queue before its driver "
                          f"recorded an end; see `hpcscale logs {rd.run_id}`")
    jobs = {}
    for j in queued.values():
        text = f"{j.state} ({j.reason})" if j.state == "PENDING" else j.state
        jobs[j.job_id] = text + (" (batch driver)" if j.job_id == batch_job else "")
    info: dict[str, Any] = {"run_id": rd.run_id, "state": str(shown),
                            "site": state.site, "output": state.output,
                            "dir": str(rd.path)}
    if state.progress is not None and state.progress.total:
        info["progress"] = f"{state.progress.done}/{state.progress.total} tasks"
    shown_keys = {"batch_job": batch_job, "dashboard": state.dashboard,
                  "forward": state.forward, "exit_code": state.exit_code, "error": error}
    info.update({k: v for k, v in shown_keys.items() if v not in (None, "")})
    info["jobs"] = jobs
    if unanswered:
        info["slurm"] = f"did not answer, jobs unknown: {unanswered}"
    return info


def cancel(run_id: str, settle: float = 15.0) -> list[str]:
    """Cancel every SLURM job named ``hpcscale-<run id>``, a batch run's driver job too.

    For a batch run, keep looking (up to ``settle`` seconds) until none is left:
    its driver may submit a worker between our squeue and its own end. When SLURM
    does not answer, :class:`slurm.SlurmUnavailable` says so and the run is not
    marked cancelled.
    """
    rd = find(run_id)
    name = rd.job_name
    cancelled: set[str] = set()
    deadline = time.monotonic() + settle
    while True:
        queued = slurm.queue(name=name)
        new = sorted(set(queued) - cancelled)
        slurm.cancel(new)
        cancelled.update(new)
        if not queued or not rd.status().batch or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if rd.status().state in ACTIVE | {RunState.WRITTEN}:
        rd.update(state=RunState.CANCELLED)
    return sorted(cancelled, key=lambda j: (len(j), j))


def logs(run_id: str, tail: int | None = None) -> list[tuple[Path, str]]:
    """The run's log files (batch driver's first, then the workers'), each's text or
    its last ``tail`` lines. The workers' are read where the jobs wrote them: the
    profile's ``log_directory`` when it set one (only this run's files there)."""
    rd = find(run_id)
    directory = rd.logs
    files = sorted(directory.glob("*.out")) + sorted(directory.glob("*.err"))
    elsewhere = rd.worker_logs
    if elsewhere != directory and elsewhere.is_dir():
        files += sorted(elsewhere.glob(f"{rd.job_name}-*.out")) + sorted(
            elsewhere.glob(f"{rd.job_name}-*.err"))
    drivers = {p.name.split("%", 1)[0] for p in rd.driver_output}
    files.sort(key=lambda f: (not any(f.name.startswith(d) for d in drivers), f.name))
    found = []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:]) if tail else ""
        found.append((f, text))
    return found


def _driver_alive(state: RunStatus) -> bool:
    if state.host != socket.gethostname() and state.host != os.uname().nodename:
        return True  # another login node: cannot tell, leave it alone
    return state.pid is not None and pid_alive(state.pid)


def cleanup() -> list[str]:
    """Cancel jobs of runs on this host whose driver process no longer exists.

    A batch run counts as orphaned only when a working squeue no longer lists its
    batch job; when SLURM does not answer, :class:`slurm.SlurmUnavailable` ends the
    cleanup and nothing is cancelled on a guess.
    """
    cancelled: list[str] = []
    for rd in list_runs():
        state = rd.status()
        if not state.active:
            continue
        if state.batch_job:
            # A batch run's driver lives in its batch job, wherever that runs.
            if state.batch_job in slurm.queue([state.batch_job]):
                continue
        elif _driver_alive(state):
            continue
        ids = sorted(slurm.queue(name=rd.job_name))
        slurm.cancel(ids)
        cancelled += ids
        rd.update(state=RunState.ORPHANED, cancelled=ids)
    return cancelled
