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
from hpcscale.errors import UsageError
from hpcscale.rundir import RunDir, list_runs


def find(run_id: str) -> RunDir:
    matches = [r for r in list_runs() if r.run_id.startswith(run_id)]
    if len(matches) != 1:
        what = "no run" if not matches else f"{len(matches)} runs"
        raise UsageError(f"RUN {run_id!r}: {what} with that id (see `hpcscale runs`)")
    return matches[0]


def overview() -> list[dict[str, Any]]:
    return [{"run_id": r.run_id, "state": r.state().get("state", "?"),
             "site": r.state().get("site", "?"), "output": r.state().get("output", "?")}
            for r in list_runs()]


def _job_name(rd: RunDir) -> str:
    return f"hpcscale-{rd.run_id}"


_ACTIVE = {"created", "starting", "pending", "running"}


def status(run_id: str) -> dict[str, Any]:
    """State of a run (from its driver's ``state.json``) and of its SLURM jobs.

    For a batch run, the batch job is marked ``(batch driver)``; a run whose batch
    job left the queue without its driver recording an end is shown as ``lost``.
    """
    rd = find(run_id)
    unanswered = ""
    try:
        queued = slurm.queue(name=_job_name(rd)) if slurm.available() else {}
    except slurm.SlurmUnavailable as err:
        # no answer says nothing about the jobs: show the run's own record only
        queued, unanswered = {}, str(err)
    answered = slurm.available() and not unanswered
    state = rd.state()  # read after squeue: a driver that ended has recorded it by now
    batch_job = state.get("batch_job")
    shown = state.get("state", "?")
    if shown == "written" and queued:
        shown = "pending"  # a script submitted by hand: its job is queued
    elif shown in _ACTIVE and batch_job and answered and batch_job not in queued:
        shown = "lost"
        state.setdefault("error", f"batch job {batch_job} left the queue before its driver "
                         f"recorded an end; see `hpcscale logs {rd.run_id}`")
    jobs = {}
    for j in queued.values():
        text = f"{j.state} ({j.reason})" if j.state == "PENDING" else j.state
        jobs[j.job_id] = text + (" (batch driver)" if j.job_id == batch_job else "")
    info: dict[str, Any] = {"run_id": rd.run_id, "state": shown,
                            "site": state.get("site"), "output": state.get("output"),
                            "dir": str(rd.path)}
    progress = state.get("progress")
    if isinstance(progress, dict) and progress.get("total"):
        info["progress"] = f"{progress.get('done', 0)}/{progress['total']} tasks"
    for key in ("batch_job", "dashboard", "forward", "exit_code", "error"):
        if state.get(key) not in (None, ""):
            info[key] = state[key]
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
    name = _job_name(rd)
    cancelled: set[str] = set()
    deadline = time.monotonic() + settle
    while True:
        queued = slurm.queue(name=name)
        new = sorted(set(queued) - cancelled)
        slurm.cancel(new)
        cancelled.update(new)
        if not queued or not rd.state().get("batch") or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if rd.state().get("state") in _ACTIVE | {"written"}:
        rd.update(state="cancelled")
    return sorted(cancelled, key=lambda j: (len(j), j))


def logs(run_id: str, tail: int | None = None) -> list[tuple[Path, str]]:
    """The run's log files (batch driver's first, then the workers'), each's text or
    its last ``tail`` lines."""
    rd = find(run_id)
    directory = rd.path / "logs"
    files = sorted(directory.glob("*.out")) + sorted(directory.glob("*.err"))
    files.sort(key=lambda f: (not f.name.startswith("driver-"), f.name))
    found = []
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-tail:]) if tail else ""
        found.append((f, text))
    return found


def _driver_alive(state: dict[str, Any]) -> bool:
    if state.get("host") != socket.gethostname() and state.get("host") != os.uname().nodename:
        return True  # another login node: cannot tell, leave it alone
    pid = state.get("pid")
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup() -> list[str]:
    """Cancel jobs of runs on this host whose driver process no longer exists.

    A batch run counts as orphaned only when a working squeue no longer lists its
    batch job; when SLURM does not answer, :class:`slurm.SlurmUnavailable` ends the
    cleanup and nothing is cancelled on a guess.
    """
    cancelled: list[str] = []
    for rd in list_runs():
        state = rd.state()
        if state.get("state") not in _ACTIVE:
            continue
        if state.get("batch_job"):
            # A batch run's driver lives in its batch job, wherever that runs.
            if state["batch_job"] in slurm.queue([state["batch_job"]]):
                continue
        elif _driver_alive(state):
            continue
        ids = sorted(slurm.queue(name=_job_name(rd)))
        slurm.cancel(ids)
        cancelled += ids
        rd.update(state="orphaned", cancelled=ids)
    return cancelled
