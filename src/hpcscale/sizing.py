"""Workload + profile -> Plan: how many jobs, and why. Pure functions.

The plan is decided before anything is submitted, printed by ``plan`` and
``--dry-run``, and ``Plan.validate()`` refuses what can never run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

from hpcscale import units
from hpcscale.config.profiles import LocalProfile, SiteProfile, SlurmProfile
from hpcscale.errors import SizingError
from hpcscale.slurm import Limits

# A task holds its input chunk, its halo, the output and scratch of about the
# same size: numpy/scipy filters allocate at least one full-size temporary.
WORKING_SET_FACTOR = 4
# Give every thread at least this many tasks before adding another job: job
# start-up costs seconds, a task costs milliseconds.
TASKS_PER_THREAD = 2
# Common per-user inode quotas on shared filesystems are 100k-1M files.
INODE_WARNING = 100_000


@dataclass(frozen=True)
class Workload:
    """What the job spec's graph needs, measured from the input and the steps."""

    chunks: int  # tasks in the widest stage (input chunks)
    chunk_bytes: int  # largest input chunk, halo included
    bytes_in: int
    bytes_out: int
    output_chunks: int = 1
    # a step's work holds the GIL (numpy's histogram): threads of one process do not
    # run it in parallel, worker processes do
    holds_gil: bool = False


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


def plan(
    profile: SiteProfile, workload: Workload, jobs: int | str, limits: Limits | None = None,
    *, walltime: int | None = None,
) -> Plan:
    """Choose jobs and walltime for ``workload`` on ``profile`` within the live ``limits``.

    ``jobs`` is a number or "auto". ``walltime`` (seconds; the job spec's
    ``[run] walltime``) caps the site's walltime for this run: one over the
    site's is clamped to it; the walltime used must fit the partition's
    MaxTime or the plan is refused. Every decision is recorded with the limit
    that bound it; ``SizingError`` for what can never run.
    """
    decisions: list[str] = []
    if isinstance(profile, LocalProfile):
        return _plan_local(profile, workload, jobs, walltime)
    s = profile.slurm
    if jobs == "auto":
        wanted = max(1, math.ceil(workload.chunks / (s.cores * TASKS_PER_THREAD)))
        decisions.append(
            f"{wanted} job(s) give each of the {s.cores} thread(s) per job at least "
            f"{TASKS_PER_THREAD} of the {workload.chunks} tasks in the widest stage"
        )
    else:
        wanted = int(jobs)
        if wanted < 1:
            raise SizingError(f"--jobs {jobs}: must be at least 1 or 'auto'")
        decisions.append(f"{wanted} job(s): as asked")
    caps = [(s.max_jobs, f"max_jobs of site {profile.name}")]
    asked, walltime = walltime, s.walltime
    if asked is not None and asked <= s.walltime:
        walltime = asked
        decisions.append(f"walltime {units.format_walltime(asked)} from the job spec's [run] "
                         f"walltime (site {profile.name}: {units.format_walltime(s.walltime)})")
    elif asked is not None:
        decisions.append(
            f"the job spec's [run] walltime {units.format_walltime(asked)} is over site "
            f"{profile.name}'s walltime {units.format_walltime(s.walltime)}: clamped to it "
            "(workers are replaced before it; raise the site's walltime for longer jobs)")
    if limits is not None:
        _refuse_impossible(profile, limits, walltime, from_spec=walltime == asked)
        fit, per_node = limits.jobs_fit(s.cores, units.slurm_mem_bytes(s.memory))
        lo, hi = min(per_node, default=0), max(per_node, default=0)
        each = f"{lo}" if lo == hi else f"{lo} to {hi}"
        caps.append((fit, f"the {fit} that fit at once on the {limits.nodes} node(s) of "
                          f"partition {limits.partition} ({each} per node, by cores and memory)"))
        if limits.max_jobs is not None:
            caps.append((limits.max_jobs, "your association's MaxJobs"))
        if limits.max_submit is not None:
            caps.append((limits.max_submit, "your association's MaxSubmitJobs"))
        if limits.max_wall is not None and walltime > limits.max_wall:
            walltime = limits.max_wall
            decisions.append(f"walltime clamped to {units.format_walltime(walltime)} by "
                             "your association's MaxWall; workers are replaced before it")
    n = wanted
    for cap, why in caps:
        if cap < n:
            n = cap
            decisions.append(f"capped at {n} job(s) by {why}")
    if workload.output_chunks > INODE_WARNING:
        decisions.append(
            f"warning: the output will have about {workload.output_chunks} files; shared "
            "filesystems often limit inodes -- set [output] shards to pack chunks into shards"
        )
    result = Plan(profile.name, "slurm", n, s.processes, s.threads, s.worker_memory,
                  walltime, workload, tuple(decisions))
    result.validate()
    return result


def _refuse_impossible(profile: SlurmProfile, limits: Limits, walltime: int,
                       from_spec: bool = False) -> None:
    s = profile.slurm
    where = f"partition {limits.partition}"
    if limits.max_time is not None and walltime > limits.max_time:
        whose = " (the job spec's [run] walltime)" if from_spec else ""
        raise SizingError(
            f"site {profile.name}: walltime {units.format_walltime(walltime)}{whose} is over "
            f"{where}'s MaxTime {units.format_walltime(limits.max_time)}; lower walltime "
            "(long runs still finish: workers are replaced before their walltime)"
        )
    if s.cores > limits.node_cpus:
        raise SizingError(f"site {profile.name}: cores={s.cores} but the largest node of "
                          f"{where} has {limits.node_cpus}")
    if units.slurm_mem_bytes(s.memory) > limits.node_memory:
        raise SizingError(
            f"site {profile.name}: memory={units.format_bytes(s.memory)} but the largest node "
            f"of {where} has {units.format_bytes(limits.node_memory)}"
        )


def _plan_local(profile: LocalProfile, workload: Workload, jobs: int | str,
                walltime: int | None = None) -> Plan:
    workers, threads = _local_layout(profile, jobs, workload.holds_gil)
    mem = (profile.local.memory or _local_memory()) // workers
    if jobs != "auto" or profile.local.workers:
        why = "as asked"
    elif workload.holds_gil:
        why = "one process per core of this machine: the work holds the GIL"
    else:
        why = "one process with a thread per core of this machine"
    decisions = [f"{workers} local worker(s): {why}"]
    if walltime is not None:
        decisions.append(f"the job spec's [run] walltime {units.format_walltime(walltime)} "
                         f"applies to SLURM jobs only; site {profile.name} is local: no limit")
    result = Plan(profile.name, "local", workers, 1, threads, int(mem), None, workload,
                  tuple(decisions))
    result.validate()
    return result


# What one task may read at once when small stored chunks are batched (ops.read_batch):
# dask's own default chunk size, counted at 8 bytes a value.
BATCH_BYTES = 128 << 20


def batch_budget(profile: SiteProfile) -> int:
    """Bytes a task may read when the input's stored chunks are batched: BATCH_BYTES,
    or less where a worker thread's memory would not hold the working set twice."""
    match profile:
        case SlurmProfile():
            per_thread = profile.slurm.worker_memory // max(1, profile.slurm.threads)
        case LocalProfile():
            memory = profile.local.memory or _local_memory()
            per_thread = memory // max(1, os.cpu_count() or 1)
    return max(0, min(BATCH_BYTES, per_thread // (WORKING_SET_FACTOR * 2)))


def _local_layout(profile: LocalProfile, jobs: int | str, holds_gil: bool) -> tuple[int, int]:
    """Worker processes and threads per worker on this machine: the profile's, else the
    asked number of workers, else by default one worker with a thread per core. Every
    step but the histogram is numpy or scipy.ndimage, which release the GIL, and a
    worker's threads share memory with no transfer between processes (measured in
    docs/performance.md: faster than a process per core, except for the histogram,
    which gets a process per core, at most 4)."""
    ncores = os.cpu_count() or 1
    auto = min(ncores, 4) if holds_gil else 1
    workers = profile.local.workers or (auto if jobs == "auto" else int(jobs))
    threads = profile.local.threads or max(1, ncores // workers)
    return workers, threads


def _local_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)
