"""Commands that follow runs: runs, status, logs, cancel, cleanup."""

from __future__ import annotations

from typing import Annotated

import typer

from hpcscale.cli.render import result
from hpcscale.run import history as runlib

RunId = Annotated[str, typer.Argument(
    help="Run id (see `hpcscale runs`), a unique prefix of one, or `last`.")]


def runs() -> None:
    """List runs, newest last, with their state and output.

    Example: hpcscale runs
    """
    rows = runlib.overview()
    lines = [f"{r['run_id']:<24} {r['state']:<10} {r['site']:<12} {r['output']}" for r in rows]
    result("\n".join(lines) or "no runs yet", rows)


def status(run_id: RunId) -> None:
    """State of a run and of its SLURM jobs.

    Example: hpcscale status 20261122-101500-ab12cd
    """
    info = runlib.status(run_id)
    lines = [f"{k:<10} {v}" for k, v in info.items() if k != "jobs"]
    lines += [f"job {j:<8} {s}" for j, s in info.get("jobs", {}).items()]
    result("\n".join(lines), info)


def cancel(run_id: RunId) -> None:
    """Cancel every SLURM job of a run.

    Example: hpcscale cancel 20261122-101500-ab12cd
    """
    cancelled = runlib.cancel(run_id)
    result(f"cancelled {len(cancelled)} job(s): {' '.join(cancelled) or '-'}",
           {"cancelled": cancelled})


def logs(
    run_id: RunId,
    tail: Annotated[int | None, typer.Option(
        "--tail", "-n", min=0, help="Only the last N lines of each log.")] = None,
) -> None:
    """Print a run's logs: the batch driver's, then each worker job's.

    Example: hpcscale logs last --tail 20
    """
    found = runlib.logs(run_id, tail)
    text = "\n".join(f"==> {path} <==\n{body.rstrip()}" for path, body in found)
    result(text or "no logs yet", [{"file": str(p), "text": t} for p, t in found])


def cleanup() -> None:
    """Cancel the jobs of runs whose driver process is gone (after kill -9 or a logout).

    Example: hpcscale cleanup
    """
    cancelled = runlib.cleanup()
    result(f"cancelled {len(cancelled)} orphaned job(s): {' '.join(cancelled) or '-'}",
           {"cancelled": cancelled})


def register(app: typer.Typer) -> None:
    for fn in (runs, status, logs, cancel, cleanup):
        app.command()(fn)
