"""What a run's numbers say: the plan against what happened, and the SLURM jobs' waits."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from hpcscale import units
from hpcscale.report.record import (
    Planned,
    RunRecord,
    Sample,
    integer,
    memory_limit,
    number,
    peaks,
)
from hpcscale.rundir import RunState

__all__ = ["JobTimes", "facts", "fmt_bytes", "fmt_secs", "job_times"]

_RUNNING = {"RUNNING", "COMPLETING", "COMPLETED"}


@dataclass(frozen=True)
class JobTimes:
    """A SLURM job as the timeline saw it; times in seconds since the run started."""

    first_seen: float
    running: float | None
    last_state: str

    @property
    def waited(self) -> float | None:
        return None if self.running is None else self.running - self.first_seen


def job_times(samples: list[Sample]) -> dict[str, JobTimes]:
    """Per job: when it was first seen in squeue, first seen running, its last state seen."""
    first: dict[str, float] = {}
    running: dict[str, float] = {}
    last: dict[str, str] = {}
    for s in samples:
        for job, state in s.jobs.items():
            first.setdefault(job, s.t)
            if state in _RUNNING:
                running.setdefault(job, s.t)
            last[job] = state
    return {j: JobTimes(first[j], running.get(j), last[j])
            for j in sorted(first, key=lambda j: (len(j), j))}


def fmt_secs(value: Any) -> str:
    """A JSON number of seconds as ``12.3 s``; ``-`` for anything else."""
    found = number(value)
    return "-" if found is None else f"{found:.1f} s"


def fmt_bytes(value: Any) -> str:
    """A JSON number of bytes as ``1.50GiB``; ``-`` for anything else."""
    found = integer(value)
    return "-" if found is None else units.format_bytes(found)


def _known(value: int | None) -> str:
    return "-" if value is None else str(value)


def facts(rec: RunRecord) -> list[tuple[str, str, str]]:
    """The plan against what happened: (what, planned, happened) rows, as text."""
    s, plan, jobs = rec.summary, rec.plan, job_times(rec.samples)
    rows: list[tuple[str, str, str]] = []
    ids = set(jobs) | {str(j) for j in s.get("jobs") or []} | set(rec.state.jobs)
    if ids or plan.kind == "slurm":
        started = sum(1 for j in jobs.values() if j.running is not None)
        rows.append(("SLURM jobs", _known(plan.jobs),
                     f"{len(ids)} submitted, {started} seen running"))
        waits = sorted(w for j in jobs.values() if (w := j.waited) is not None)
        if waits and f"{waits[0]:.1f}" == f"{waits[-1]:.1f}":
            rows.append(("wait in queue", "-", f"{waits[0]:.1f} s for each of {len(waits)} "
                         "job(s) seen running"))
        elif waits:
            rows.append(("wait in queue", "-",
                         f"{waits[0]:.1f} s to {waits[-1]:.1f} s (median "
                         f"{statistics.median(waits):.1f} s) over {len(waits)} job(s)"))
        gone = [(what, [str(j) for j in s.get(key) or []])
                for what, key in (("lost", "lost_jobs"), ("retired", "retired_jobs"))]
        rows.append(("lost / retired jobs", "0 / 0", " / ".join(str(len(g)) for _, g in gone)
                     + "".join(f"; {w}: {' '.join(g)}" for w, g in gone if g)))
    most = max((len(x.workers) for x in rec.samples), default=0)
    rows.append(("workers", f"{_known(plan.workers)} x {_known(plan.threads)} thread(s)",
                 f"{s.get('workers', '-')} at the end, at most {most} at once"))
    nodes = [str(n) for n in s.get("nodes") or []]
    rows.append(("nodes", "-", f"{len(nodes)}: {', '.join(nodes)}" if nodes else "-"))
    peak = max((v for v in peaks(rec).values() if v), default=None)
    rows.append(("memory per worker", plan.memory or "-",
                 f"limit {fmt_bytes(memory_limit(rec))}, highest peak {fmt_bytes(peak)}"))
    rows += _start_rows(rec)
    blocks, resumed = integer(s.get("blocks")), integer(s.get("blocks_resumed")) or 0
    seen = [x for x in rec.samples if x.blocks is not None]
    happened = (f"{blocks - resumed} written, {resumed} resumed" if blocks
                else f"{seen[-1].blocks} of {seen[-1].total} written" if seen else "-")
    rows.append(("output blocks", "-" if plan.output_chunks is None
                 else f"{plan.output_chunks} chunks", happened))
    rows.append(("bytes in / out (uncompressed)",
                 f"{plan.bytes_in or '-'} / {plan.bytes_out or '-'}",
                 f"{fmt_bytes(s.get('bytes_in'))} / {fmt_bytes(s.get('bytes_out'))}"))
    compute = number(s.get("compute_s"))
    rows.append(("compute time", _predicted(plan), fmt_secs(compute)
                 + _against(compute, plan.compute_s)))
    if compute and rec.state.state == RunState.DONE:
        rates = [f"{fmt_bytes((number(s.get(k)) or 0) / compute)}/s"
                 for k in ("bytes_in", "bytes_out")]
        rows.append(("throughput in / out", "-", " / ".join(rates)))
    seconds, limit = number(s.get("seconds")), plan.walltime
    share = f" ({100 * seconds / limit:.0f}% of the walltime)" if seconds and limit else ""
    rows.append(("run time (walltime)", units.format_walltime(limit) if limit else "-",
                 fmt_secs(seconds) + share))
    if plan.kind == "slurm" and (plan.cpu_hours_requested is not None or ids):
        rows.append(("CPU-hours", _cpu_planned(plan), _cpu_used(rec, len(ids))))
    if plan.start:
        rows.append(("expected start", f"{plan.start} (SLURM)", "-"))
    return rows


def _predicted(plan: Planned) -> str:
    """The plan's predicted compute time with its range and source; "-" without one."""
    if plan.compute_s is None:
        return "-"
    span = ""
    if plan.compute_low_s is not None and plan.compute_high_s is not None:
        span = f" ({plan.compute_low_s:.1f} to {plan.compute_high_s:.1f} s)"
    return f"{plan.compute_s:.1f} s{span}, from the {plan.source or 'model'}"


def _against(actual: float | None, predicted: float | None) -> str:
    if not actual or not predicted:
        return ""
    return f" ({actual / predicted:.2f} x the prediction)"


def _cpu_planned(plan: Planned) -> str:
    parts = []
    if plan.cpu_hours_requested is not None:
        parts.append(f"{plan.cpu_hours_requested:.3f} requested")
    if plan.cpu_hours_predicted is not None:
        parts.append(f"about {plan.cpu_hours_predicted:.3f} predicted for the compute")
    return ", ".join(parts) or "-"


def _cpu_used(rec: RunRecord, jobs: int) -> str:
    """About what the jobs used: each job's cores from its first worker to the run's end
    (the jobs' own times are SLURM's accounting, not recorded here)."""
    s = rec.summary
    seconds, first = number(s.get("seconds")), number(s.get("first_worker_s")) or 0.0
    compute = number(s.get("compute_s"))
    cores = rec.plan.cores
    if not seconds or not cores or not jobs:
        return "-"
    held = max(seconds - first, 0.0)
    text = (f"about {jobs * cores * held / 3600:.3f} "
            f"({jobs} job(s) x {cores} core(s) x {held:.0f} s)")
    if compute:
        text += f"; {jobs * cores * compute / 3600:.3f} for the compute"
    return text


def _start_rows(rec: RunRecord) -> list[tuple[str, str, str]]:
    """The startup (command start to run start) and the first worker, from the run's start.

    Older runs recorded no startup, and counted the first worker from the command's start.
    """
    s = rec.summary
    sampled = next((x.t for x in rec.samples if x.workers), None)
    first = number(s.get("first_worker_s"))
    if "startup_s" not in s:
        told = [*([f"{sampled:.1f} s after the run started"] if sampled is not None else []),
                *([f"{first:.1f} s after the command started"] if first is not None else [])]
        return [("first worker", "-", "; ".join(told) or "-")]
    startup = number(s.get("startup_s")) or None  # 0: not the first run of its command
    first = first if first is not None else sampled
    after = f" ({startup + first:.1f} s after the command started)" if startup and first else ""
    return [("startup", "-", f"{startup:.1f} s from the command's start to the run's (Python, "
             "imports, reading the input, planning)" if startup else "-"),
            ("first worker", "-", "-" if first is None
             else f"{first:.1f} s after the run started{after}")]
