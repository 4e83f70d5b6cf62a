"""Workload + profile -> Plan: how many jobs, and why. Pure functions.

The plan is decided before anything is submitted, printed by ``plan`` and
``--dry-run``, and ``Plan.validate()`` refuses what can never run.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from hpcscale import predict, units
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
    # what the work is, as the throughput model matches past runs (predict.Signature)
    steps: str = ""
    kinds: str = ""
    input: str = ""
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
    forecast: predict.Forecast | None = None  # with evidence: what the plan predicts
    # a local run of one worker on dask's threaded scheduler in the driver's process
    # (hpcscale.backends.threads), not a LocalCluster
    in_process: bool = False

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
        if self.forecast is not None:
            out += self.forecast.lines()
        out += [f"decision        {d}" for d in self.decisions]
        return out


def plan(
    profile: SiteProfile, workload: Workload, jobs: int | str, limits: Limits | None = None,
    *, walltime: int | Literal["auto"] | None = None, evidence: predict.Evidence | None = None,
    in_process: bool = False,
) -> Plan:
    """Choose jobs and walltime for ``workload`` on ``profile`` within the live ``limits``.

    ``jobs`` is a number or "auto". ``walltime`` (seconds; the job spec's
    ``[run] walltime``) caps the site's walltime for this run: one over the
    site's is clamped to it; the walltime used must fit the partition's
    MaxTime or the plan is refused. ``"auto"`` (or a site's ``walltime =
    "auto"``) asks for the predicted time plus a margin. ``evidence``: what
    the site measured (:mod:`hpcscale.predict`); with it the plan carries a
    forecast, and ``--jobs auto`` minimises the predicted time to result.
    Every decision is recorded with the limit that bound it; ``SizingError``
    for what can never run. ``in_process``: the caller can run a local plan of one
    worker on dask's threaded scheduler in its own process (a run, not a Client
    handed to a user), which the plan then does unless the profile says
    ``scheduler = "distributed"``.
    """
    if isinstance(profile, LocalProfile):
        return _plan_local(profile, workload, jobs, walltime, evidence, in_process)
    s = profile.slurm
    tp = evidence.throughput if evidence is not None else None
    decisions: list[str] = []
    wanted: int | None = None  # None: --jobs auto with a prediction, chosen within the caps
    if jobs == "auto" and tp is None:
        wanted = max(1, math.ceil(workload.chunks / (s.cores * TASKS_PER_THREAD)))
        decisions.append(
            f"{wanted} job(s) give each of the {s.cores} thread(s) per job at least "
            f"{TASKS_PER_THREAD} of the {workload.chunks} tasks in the widest stage"
        )
    elif jobs != "auto":
        wanted = int(jobs)
        if wanted < 1:
            raise SizingError(f"--jobs {jobs}: must be at least 1 or 'auto'")
        decisions.append(f"{wanted} job(s): as asked")
    wall = _walltime(profile, walltime, limits, decisions)
    caps = _caps(profile, limits)

    def walltime_for(n: int) -> int:
        """The walltime a run of ``n`` jobs asks for."""
        if not wall.auto or evidence is None or tp is None:
            return wall.fallback
        need = predict.job_need(evidence, workload.chunks, workload.bytes_in, n * s.cores)
        return predict.fitting_walltime(need, wall.ceiling)

    if wanted is None and evidence is not None:
        most, bound = min(caps, key=lambda c: c[0])
        n, why = predict.choose_jobs(evidence, tasks=workload.chunks,
                                     bytes_in=workload.bytes_in, threads_per_job=s.cores,
                                     ceiling=most, bound=bound, walltime_for=walltime_for)
        decisions.append(why)
    else:
        n = wanted or 1
        for cap, why in caps:
            if cap < n:
                n = cap
                decisions.append(f"capped at {n} job(s) by {why}")
    used = walltime_for(n)
    if wall.auto:
        decisions.append(_auto_walltime_decision(evidence, used, wall, n * s.cores, workload))
    if workload.output_chunks > INODE_WARNING:
        decisions.append(
            f"warning: the output will have about {workload.output_chunks} files; shared "
            "filesystems often limit inodes -- set [output] shards to pack chunks into shards"
        )
    forecast = None
    if evidence is not None:
        forecast = predict.forecast(
            evidence, tasks=workload.chunks, bytes_in=workload.bytes_in,
            bytes_out=workload.bytes_out, jobs=n, threads_per_job=s.cores, cores_per_job=s.cores,
            walltime=used, ceiling=wall.ceiling)
        forecast = dataclasses.replace(forecast, shapes=_shapes(forecast, n, used, walltime_for,
                                                                wall.auto))
    result = Plan(profile.name, "slurm", n, s.processes, s.threads, s.worker_memory,
                  used, workload, tuple(decisions), forecast)
    result.validate()
    return result


@dataclass(frozen=True)
class _Walltime:
    fallback: int  # the walltime without a prediction (or not "auto")
    auto: bool  # walltime = "auto", from the job spec or the site
    ceiling: int | None  # the longest an "auto" walltime may be


def _walltime(profile: SlurmProfile, walltime: int | Literal["auto"] | None,
              limits: Limits | None, decisions: list[str]) -> _Walltime:
    """The site's walltime, the job spec's cap on it, the live limits; refuses what
    cannot run (cores, memory, a walltime over MaxTime)."""
    s = profile.slurm
    auto = walltime == "auto" or (walltime is None and s.auto_walltime)
    asked = walltime if isinstance(walltime, int) else None
    site_wall = None if s.auto_walltime else s.walltime_seconds  # the site's cap, if any
    shown = units.format_walltime(site_wall) if site_wall is not None else "auto"
    used = s.walltime_seconds
    if asked is not None and (site_wall is None or asked <= site_wall):
        used = asked
        decisions.append(f"walltime {units.format_walltime(asked)} from the job spec's [run] "
                         f"walltime (site {profile.name}: {shown})")
    elif asked is not None:
        decisions.append(
            f"the job spec's [run] walltime {units.format_walltime(asked)} is over site "
            f"{profile.name}'s walltime {shown}: clamped to it "
            "(workers are replaced before it; raise the site's walltime for longer jobs)")
    ceiling = site_wall if walltime == "auto" else None
    if limits is not None:
        if auto and limits.max_time is not None:
            used = min(used, limits.max_time)
        _refuse_impossible(profile, limits, used, from_spec=used == asked)
        if limits.max_wall is not None and used > limits.max_wall:
            used = limits.max_wall
            decisions.append(f"walltime clamped to {units.format_walltime(used)} by "
                             "your association's MaxWall; workers are replaced before it")
        ceiling = _least(ceiling, limits.max_time, limits.max_wall)
    return _Walltime(used, auto, ceiling)


def _caps(profile: SlurmProfile, limits: Limits | None) -> list[tuple[int, str]]:
    """Every bound on the job count, each with its words."""
    s = profile.slurm
    caps = [(s.max_jobs, f"max_jobs of site {profile.name}")]
    if limits is None:
        return caps
    fit, per_node = limits.jobs_fit(s.cores, units.slurm_mem_bytes(s.memory))
    lo, hi = min(per_node, default=0), max(per_node, default=0)
    each = f"{lo}" if lo == hi else f"{lo} to {hi}"
    caps.append((fit, f"the {fit} that fit at once on the {limits.nodes} node(s) of "
                      f"partition {limits.partition} ({each} per node, by cores and memory)"))
    if limits.max_jobs is not None:
        caps.append((limits.max_jobs, "your association's MaxJobs"))
    if limits.max_submit is not None:
        caps.append((limits.max_submit, "your association's MaxSubmitJobs"))
    return caps


def _least(*values: int | None) -> int | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None


def _auto_walltime_decision(evidence: predict.Evidence | None, used: int, wall: _Walltime,
                            threads: int, workload: Workload) -> str:
    if evidence is None or evidence.throughput is None:
        why = evidence.missing if evidence is not None and evidence.missing else "no prediction"
        return (f"walltime = \"auto\" without a prediction ({why}): the site's walltime "
                f"{units.format_walltime(wall.fallback)}")
    need = predict.job_need(evidence, workload.chunks, workload.bytes_in, threads)
    ceiling = wall.ceiling
    text = (f"walltime {units.format_walltime(used)} (walltime = \"auto\"): a worker job needs "
            f"about {predict.duration(need)} (start-up and the slow end of the predicted "
            f"compute), plus {predict.AUTO_MARGIN:.0%} (at least {predict.AUTO_EXTRA} s), "
            f"rounded up to {predict.AUTO_STEP // 60} min")
    if ceiling is not None and used == ceiling and predict.fitting_walltime(need) > ceiling:
        text += (f"; capped at {units.format_walltime(ceiling)}: "
                 f"{predict.generations(need, used)} generation(s) of workers")
    return text


def _shapes(forecast: predict.Forecast, jobs: int, walltime: int,
            walltime_for: Callable[[int], int], auto_wall: bool) -> tuple[tuple[int, int], ...]:
    """The (jobs, walltime) shapes whose SLURM start would inform this plan: its own,
    fewer jobs, and the walltime that fits the prediction when it is shorter."""
    found = [(jobs, walltime)]
    found += [(j, walltime_for(j)) for j in (jobs // 2, 1) if 1 <= j < jobs]
    fits = forecast.fitting_walltime
    if not auto_wall and fits is not None and fits < walltime:
        found.append((jobs, fits))
    return tuple(dict.fromkeys(found))


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
                walltime: int | str | None = None,
                evidence: predict.Evidence | None = None, in_process: bool = False) -> Plan:
    workers, threads = _local_layout(profile, jobs, workload.holds_gil)
    mem = (profile.local.memory or _local_memory()) // workers
    if jobs != "auto" or profile.local.workers:
        why = "as asked"
    elif workload.holds_gil:
        why = "one process per core of this machine: the work holds the GIL"
    else:
        why = "one process with a thread per core of this machine"
    decisions = [f"{workers} local worker(s): {why}"]
    threaded = in_process and runs_in_process(profile, jobs, workload.holds_gil)
    if threaded:
        decisions.append(
            f"dask's threaded scheduler in this process, {threads} thread(s): with one "
            "worker, a worker process and a scheduler only add their cost to every task "
            "(no dashboard; [local] scheduler = \"distributed\" runs a LocalCluster)")
    if walltime is not None:
        shown = units.format_walltime(walltime) if isinstance(walltime, int) else walltime
        decisions.append(f"the job spec's [run] walltime {shown} "
                         f"applies to SLURM jobs only; site {profile.name} is local: no limit")
    forecast = None if evidence is None else predict.forecast(
        evidence, tasks=workload.chunks, bytes_in=workload.bytes_in,
        bytes_out=workload.bytes_out, jobs=workers, threads_per_job=threads)
    result = Plan(profile.name, "local", workers, 1, threads, int(mem), None, workload,
                  tuple(decisions), forecast, in_process=threaded)
    result.validate()
    return result


# What one task may read at once when small stored chunks are batched (ops.read_batch),
# counted at 8 bytes a value. Measured (docs/performance.md), mean along z of 16k
# unwritten 8 x 512 x 512 chunks: on dask's threaded scheduler (a run in process) 16 MiB
# float32 blocks took 25-30 s, 32 MiB 38-40 s, 64 MiB 28-40 s: from 32 MiB a block is
# beyond glibc's largest mmap threshold, fresh memory the kernel maps and zeroes for
# every task, where smaller ones reuse the heap. On worker processes dask's cost per
# task (2-3 ms) weighs more: the same run on 2 workers x 1 thread took 45 s with 64 MiB
# blocks and 75 s with 16 MiB ones.
BATCH_BYTES = 128 << 20
BATCH_BYTES_IN_PROCESS = 32 << 20


def batch_budget(profile: SiteProfile, *, in_process: bool = False) -> int:
    """Bytes a task may read when the input's stored chunks are batched: BATCH_BYTES
    (BATCH_BYTES_IN_PROCESS for a run on the threaded scheduler), or less where a worker
    thread's memory would not hold the working set twice."""
    match profile:
        case SlurmProfile():
            per_thread = profile.slurm.worker_memory // max(1, profile.slurm.threads)
        case LocalProfile():
            memory = profile.local.memory or _local_memory()
            per_thread = memory // max(1, os.cpu_count() or 1)
    limit = BATCH_BYTES_IN_PROCESS if in_process else BATCH_BYTES
    return max(0, min(limit, per_thread // (WORKING_SET_FACTOR * 2)))


def runs_in_process(profile: SiteProfile, jobs: int | str, holds_gil: bool) -> bool:
    """Whether a run (which can run in its own process) of this profile runs on dask's
    threaded scheduler in that process: a local site laid out as one worker, unless
    its profile says ``scheduler = "distributed"``."""
    if not isinstance(profile, LocalProfile) or profile.local.scheduler != "auto":
        return False
    if jobs != "auto" and not (isinstance(jobs, int) and jobs >= 1):
        return False  # the plan refuses it, in its own words
    return _local_layout(profile, jobs, holds_gil)[0] == 1


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
