"""Following runs after the fact: list, status, cancel, cleanup of orphans.

A run's SLURM jobs are named ``hpcscale-<run id>``, so they can be found in
``squeue`` even when the driver died before it recorded their ids.
"""

from __future__ import annotations

import os
import socket
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


def status(run_id: str) -> dict[str, Any]:
    rd = find(run_id)
    state = rd.state()
    jobs = {}
    if slurm.available():
        jobs = {j.job_id: f"{j.state} ({j.reason})" if j.state == "PENDING" else j.state
                for j in slurm.queue(name=_job_name(rd)).values()}
    return {"run_id": rd.run_id, "state": state.get("state", "?"),
            "site": state.get("site"), "output": state.get("output"),
            "dir": str(rd.path), "jobs": jobs}


def cancel(run_id: str) -> list[str]:
    rd = find(run_id)
    ids = sorted(slurm.queue(name=_job_name(rd)))
    slurm.cancel(ids)
    if rd.state().get("state") in {"created", "starting", "pending", "running"}:
        rd.update(state="cancelled")
    return ids


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
    """Cancel jobs of runs on this host whose driver process no longer exists."""
    cancelled: list[str] = []
    for rd in list_runs():
        state = rd.state()
        if state.get("state") not in {"created", "starting", "pending", "running"}:
            continue
        if _driver_alive(state):
            continue
        ids = sorted(slurm.queue(name=_job_name(rd)))
        slurm.cancel(ids)
        cancelled += ids
        rd.update(state="orphaned", cancelled=ids)
    return cancelled
