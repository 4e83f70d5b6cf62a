"""What this site has measured, read for the planner: the run history, the calibrations
and SLURM's expected starts, as :class:`hpcscale.predict.Evidence`.

Every finished run leaves ``plan.json`` (what it was: steps, input, tasks, threads)
and ``summary.json`` (what it measured: compute time, time to a first worker)
in its run directory; each one read here is one more :class:`~hpcscale.predict.Observation`,
so each finished run improves the next prediction. Unreadable or foreign files
are skipped, never raised.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from hpcscale import predict, sizing, slurm
from hpcscale._fs import write_json
from hpcscale.config.profiles import SiteProfile, SlurmProfile
from hpcscale.ops import Step
from hpcscale.rundir import RunDir, RunState, calibration_file, list_runs

# The newest runs read for the history: enough for every site's MAX_RUNS matches.
HISTORY_RUNS = 500
# SLURM is asked about at most this many shapes, within this many seconds in all.
START_QUERIES = 4
START_BUDGET = 15.0


def signature(steps: Sequence[Step], input_kind: str, dtype: str) -> predict.Signature:
    """What the work is, as the model matches it: the steps' tables, their kinds, the input."""
    tables = [s.to_table() for s in steps]
    return predict.Signature(
        steps=json.dumps(tables, sort_keys=True, default=str),
        kinds="+".join(f"{s.KIND}:{s.name}" for s in steps),
        input=f"{input_kind} {dtype}",
    )


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _number(value: Any) -> float | None:
    ok = type(value) in (int, float) and math.isfinite(value)
    return float(value) if ok else None


def observation(rd: RunDir) -> predict.Observation | None:
    """A finished run as the model sees it; None for a run that did not finish, resumed
    blocks of an earlier one, or predates the recorded signature."""
    if rd.status().state != RunState.DONE:
        return None
    plan, summary = _json(rd.plan_json), _json(rd.summary)
    work = plan.get("workload")
    if not isinstance(work, dict) or not work.get("steps") or summary.get("blocks_resumed"):
        return None
    compute = _number(summary.get("compute_s"))
    workers, threads = _number(summary.get("workers")), _number(plan.get("threads_per_worker"))
    tasks, bytes_in = _number(work.get("chunks")), _number(work.get("bytes_in"))
    chunk = _number(work.get("chunk_bytes"))
    if not (compute and workers and threads and tasks and bytes_in):
        return None
    return predict.Observation(
        site=str(summary.get("site") or plan.get("site") or ""),
        signature=predict.Signature(str(work["steps"]), str(work.get("kinds") or ""),
                                    str(work.get("input") or "")),
        chunk_bytes=int(chunk or 0), bytes_in=int(bytes_in), tasks=int(tasks),
        threads=int(workers * threads), compute_s=compute,
        first_worker_s=_number(summary.get("first_worker_s")), origin=rd.run_id)


def history(runs: Iterable[RunDir] | None = None) -> list[predict.Observation]:
    """The finished runs of the runs directory (its newest :data:`HISTORY_RUNS`), oldest first."""
    found = list_runs()[-HISTORY_RUNS:] if runs is None else list(runs)
    return [o for rd in found if (o := observation(rd)) is not None]


# -- calibrations: `hpcscale calibrate`'s measurements in the user's state directory ----------

def calibrations() -> list[dict[str, Any]]:
    """The stored calibrations (a missing or unreadable file: none)."""
    entries = _json(calibration_file()).get("calibrations")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def store_calibration(entry: dict[str, Any]) -> Path:
    """Keep ``entry`` in place of an older one of the same site, steps and input."""
    key = (entry["site"], entry["steps"], entry["input"])
    kept = [e for e in calibrations() if (e.get("site"), e.get("steps"), e.get("input")) != key]
    path = calibration_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"calibrations": [*kept, entry]})
    return path


def calibration(site: str, sig: predict.Signature) -> predict.Observation | None:
    """The newest calibration of these steps on ``site``, of the same input if there is one."""
    found = [e for e in calibrations() if e.get("site") == site and e.get("steps") == sig.steps]
    found.sort(key=lambda e: (e.get("input") == sig.input, _number(e.get("when")) or 0))
    for e in reversed(found):
        seconds, bytes_in = _number(e.get("compute_s")), _number(e.get("bytes_in"))
        tasks = _number(e.get("tasks"))
        if not (seconds and bytes_in and tasks):
            continue
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(_number(e.get("when")) or 0))
        return predict.Observation(
            site, predict.Signature(sig.steps, str(e.get("kinds", "")), str(e.get("input", ""))),
            chunk_bytes=int(_number(e.get("chunk_bytes")) or 0), bytes_in=int(bytes_in),
            tasks=int(tasks), threads=1, compute_s=seconds,
            origin=f"{int(tasks)} chunk(s) on {e.get('host', '?')}, 1 thread, {when}")
    return None


# -- the evidence the planner gets ------------------------------------------------------------

def evidence(site: str, workload: sizing.Workload,
             runs: Sequence[predict.Observation] | None = None) -> predict.Evidence:
    """Throughput and start-up of ``site`` for ``workload`` from the history and calibrations."""
    seen = history() if runs is None else list(runs)
    sig = predict.Signature(workload.steps, workload.kinds, workload.input)
    found = predict.fit_throughput(seen, site, sig, workload.chunk_bytes,
                                   calibration=calibration(site, sig))
    missing = "" if found else (
        f"no finished run of these steps on site {site} yet; `hpcscale calibrate --site "
        f"{site} JOB` measures a first figure")
    return predict.Evidence(found, predict.fit_startup(seen, site), missing=missing)


def expected_starts(profile: SiteProfile, shapes: Iterable[tuple[int, int]]
                    ) -> tuple[predict.Start, ...]:
    """SLURM's expected start of each (jobs, walltime) shape, from ``sbatch --test-only``;
    the first shape SLURM gives no answer for ends the asking (unknown, not an error)."""
    if not isinstance(profile, SlurmProfile) or not slurm.available():
        return ()
    found = []
    deadline = time.monotonic() + START_BUDGET
    for jobs, walltime in list(shapes)[:START_QUERIES]:
        asked = time.time()
        answer = slurm.expected_start(profile.slurm, jobs=jobs, walltime=walltime)
        if answer is None:
            break
        wait = _seconds_until(answer.start, asked)
        if wait is None:
            break
        found.append(predict.Start(jobs, walltime, answer.start, wait))
        if time.monotonic() > deadline:
            break
    return tuple(found)


def _seconds_until(start: str, now: float) -> float | None:
    """Seconds from ``now`` to SLURM's local ``start`` time (0 when it is past)."""
    try:
        at = time.mktime(time.strptime(start, "%Y-%m-%dT%H:%M:%S"))
    except (ValueError, OverflowError):
        return None
    return max(0.0, at - now)
