"""Workload + profile -> Plan: how many jobs, and why. Pure functions.

The plan is decided before anything is submitted, printed by ``plan`` and
``--dry-run``, and ``Plan.validate()`` refuses what can never run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hpcscale import units
from hpcscale.errors import SizingError
from hpcscale.profiles import SiteProfile

# A task holds its input chunk, its halo, the output and scratch of about the
# same size: numpy/scipy filters allocate at least one full-size temporary.
WORKING_SET_FACTOR = 4
# Give every thread at least this many tasks before adding another job: job
# start-up costs seconds, a task costs milliseconds.
TASKS_PER_THREAD = 2


@dataclass(frozen=True)
class Workload:
    """What the job spec's graph needs, measured from the input and the steps."""

    chunks: int  # tasks in the widest stage (input chunks)
    chunk_bytes: int  # largest input chunk, halo included
    bytes_in: int
    bytes_out: int
    output_chunks: int = 1


@dataclass(frozen=True)
class Plan:
    site: str
    kind: str
    jobs: int
    workers_per_job: int
    threads_per_worker: int
    worker_memory: int
    walltime: int | None
    workload: Workload
    decisions: tuple[str, ...] = field(default=())

    @property
    def task_memory(self) -> int:
        return self.workload.chunk_bytes * WORKING_SET_FACTOR

    @property
    def threads(self) -> int:
        return self.jobs * self.workers_per_job * self.threads_per_worker

    def validate(self) -> None:
        """Refuse a plan that can never run."""
        per_thread = self.worker_memory // max(1, self.threads_per_worker)
        if self.task_memory > per_thread:
            raise SizingError(
                f"a chunk needs about {units.format_bytes(self.task_memory)} to process "
                f"({units.format_bytes(self.workload.chunk_bytes)} x {WORKING_SET_FACTOR}) but a "
                f"worker thread has {units.format_bytes(per_thread)} on site {self.site}; "
                "rechunk the input into smaller chunks or use a profile with more memory per core"
            )

    def lines(self) -> list[str]:
        """The plan as a person reads it."""
        w = self.workload
        out = [
            f"site            {self.site} ({self.kind})",
            f"input           {units.format_bytes(w.bytes_in)} in {w.chunks} chunks "
            f"(largest {units.format_bytes(w.chunk_bytes)} with halo)",
            f"output          {units.format_bytes(w.bytes_out)} in {w.output_chunks} chunks",
            f"per task        ~{units.format_bytes(self.task_memory)}",
            f"jobs            {self.jobs} x {self.workers_per_job} worker(s) x "
            f"{self.threads_per_worker} thread(s), "
            f"{units.format_bytes(self.worker_memory)} per worker",
        ]
        if self.walltime:
            out.append(f"walltime        {units.format_walltime(self.walltime)}")
        out += [f"decision        {d}" for d in self.decisions]
        return out


def plan(profile: SiteProfile, workload: Workload, jobs: int | str) -> Plan:
    """Choose the job count for ``workload`` on ``profile``; ``jobs`` is a number or "auto"."""
    decisions: list[str] = []
    if profile.kind == "local":
        from hpcscale.cluster import local_kwargs

        kw = local_kwargs(profile, None if jobs == "auto" else int(jobs))
        mem = kw.get("memory_limit") or _local_memory() // kw["n_workers"]
        decisions.append(f"{kw['n_workers']} local worker(s): one per core of this machine"
                         if jobs == "auto" else f"{kw['n_workers']} local worker(s): as asked")
        result = Plan(profile.name, "local", kw["n_workers"], 1, kw["threads_per_worker"],
                      int(mem), None, workload, tuple(decisions))
        result.validate()
        return result
    s = profile.slurm
    assert s is not None  # a validated slurm profile has its table
    per_job_threads = s.cores
    if jobs == "auto":
        wanted = max(1, math.ceil(workload.chunks / (per_job_threads * TASKS_PER_THREAD)))
        decisions.append(
            f"{wanted} job(s) give each of the {per_job_threads} thread(s) per job at least "
            f"{TASKS_PER_THREAD} of the {workload.chunks} tasks"
        )
    else:
        wanted = int(jobs)
        if wanted < 1:
            raise SizingError(f"--jobs {jobs}: must be at least 1 or 'auto'")
        decisions.append(f"{wanted} job(s): as asked")
    n = wanted
    if n > s.max_jobs:
        n = s.max_jobs
        decisions.append(f"capped at {n} job(s) by max_jobs of site {profile.name}")
    result = Plan(profile.name, "slurm", n, s.processes, s.threads, s.worker_memory,
                  s.walltime, workload, tuple(decisions))
    result.validate()
    return result


def _local_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)
