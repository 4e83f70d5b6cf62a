"""Watching a run's SLURM jobs while it runs.

One ``squeue`` for all of the run's jobs at most every few seconds (never one
call per job). The watcher

* reports jobs that are pending, with SLURM's reason, and fails at once on a
  reason that can never resolve (``PartitionTimeLimit``...) or once the jobs
  have pended longer than the run allows -- instead of a bare timeout;
* notices jobs that left the queue (cancelled, killed, pre-empted) and
  submits replacements, so the plan's capacity comes back -- a job counts as
  lost only when the evidence agrees: a working ``squeue`` no longer lists it
  AND its worker left the scheduler. A failed ``squeue`` (controller down,
  ``Socket timed out``) means "unknown": the last known states stand, nothing
  is replaced or submitted, and the user is told once SLURM stops and starts
  answering;
* submits a replacement ahead of each worker's lifetime, which ends before
  the job's walltime, so capacity does not drop and no worker is killed by
  SLURM mid-task (no ``KilledWorker``).

dask-jobqueue's cluster is a ``SpecCluster``: a job is replaced by adding a
new entry to ``worker_spec`` and letting the cluster correct its state.
``SpecCluster`` itself closes the job of a worker that left the scheduler and
drops it from ``workers`` but keeps its ``worker_spec`` entry, so its next
``_correct_state`` would submit that job again, on top of the watcher's
replacement: the watcher removes such entries (and replaces the job once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hpcscale import slurm
from hpcscale.backends import SUBMIT_ERRORS
from hpcscale.errors import SubmissionError
from hpcscale.predict import lifetime  # the planner counts worker generations with it

POLL = 3.0
# Pending reasons that no amount of waiting fixes.
NEVER_STARTS = frozenset({
    "PartitionTimeLimit", "PartitionNodeLimit", "PartitionConfig", "PartitionDown",
    "PartitionInactive", "QOSMaxWallDurationPerJobLimit", "AssocMaxWallDurationPerJobLimit",
    "QOSMaxCpuPerJobLimit", "QOSMaxMemoryPerJob", "AssocMaxCpuPerJobLimit",
    "DependencyNeverSatisfied", "InvalidAccount", "InvalidQOS", "BadConstraints",
    "ReqNodeNotAvail, Reserved for maintenance",
})


def worker_args(walltime: int) -> list[str]:
    life, stagger = lifetime(walltime)
    return ["--lifetime", f"{life}s", "--lifetime-stagger", f"{stagger}s"]


def cluster_jobs(cluster: Any) -> dict[str, str]:
    """Worker name -> SLURM job id of the jobs a dask-jobqueue cluster holds."""
    held = list(getattr(cluster, "workers", {}).items())  # a copy: the loop thread changes it
    return {name: str(job.job_id) for name, job in held if getattr(job, "job_id", None)}


@dataclass
class JobWatcher:
    cluster: Any  # dask-jobqueue SLURMCluster
    walltime: int
    say: Callable[[str], None]
    job_name: str = "hpcscale"
    max_pending: float = 300.0
    lead: float = 15.0  # replace this long before a worker's lifetime ends
    max_replacements: int = 50
    # the run's planned job count: replacements waiting in the queue never exceed it
    # (0: no cap). A retiring worker whose task is still running keeps its job until
    # the task ends, so generations overlap; they must not pile up in the queue.
    target: int = 0
    lost: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    replacements: int = 0
    _started: dict[str, float] = field(default_factory=dict)  # job id -> first seen running
    _seen: set[str] = field(default_factory=set)
    _known: dict[str, str] = field(default_factory=dict)  # worker name -> job id, once seen
    _replaced: set[str] = field(default_factory=set)
    _last: float = 0.0
    _since: float = field(default_factory=time.monotonic)
    states: dict[str, slurm.JobState] = field(default_factory=dict)
    answered: bool = False  # squeue has answered at least once: ``states`` means something
    silent_since: float | None = None  # when squeue stopped answering (None: it answers)
    nodes: dict[str, str] = field(default_factory=dict)  # job id -> node, as squeue said

    def jobs(self) -> dict[str, str]:
        """Worker name -> SLURM job id of the jobs the cluster holds."""
        return cluster_jobs(self.cluster)

    def poll(self, connected: int, *, force: bool = False) -> None:
        """Check the jobs (rate-limited); raises SubmissionError when they can never run."""
        now = time.monotonic()
        refused = SUBMIT_ERRORS.pop(self.job_name, None)
        if refused:
            raise SubmissionError(f"sbatch refused the worker job: {refused}")
        if not force and now - self._last < POLL:
            return
        self._last = now
        jobs = self.jobs()
        self._forget_dropped(jobs, now)
        if not self._ask(jobs, now):
            return  # no answer: nothing is known to be lost, nothing is submitted
        connected_names = self._worker_names()
        for name, job_id in jobs.items():
            state = self.states.get(job_id)
            if state is not None:
                self._seen.add(job_id)
                if state.nodes:
                    self.nodes[job_id] = state.nodes
                if state.state == "RUNNING":
                    self._started.setdefault(job_id, now)
                elif state.state == "PENDING" and state.reason in NEVER_STARTS:
                    raise SubmissionError(
                        f"job {job_id} can never start: SLURM says {state.reason} "
                        f"(partition {state.partition}); check the profile with "
                        "`hpcscale site check`"
                    )
            elif job_id in self._seen and not _has_worker(name, connected_names):
                self._gone(name, job_id, now)
        self._replace_ahead(jobs, now)
        pending = [s for s in self.states.values() if s.state == "PENDING"]
        if pending and not connected and len(pending) == len(self.states) \
                and now - self._since > self.max_pending:
            reasons = ", ".join(sorted({f"{s.job_id} {s.reason}" for s in pending}))
            raise SubmissionError(
                f"no job started within {self.max_pending:.0f} s; pending: {reasons}"
            )

    def _forget_dropped(self, jobs: dict[str, str], now: float) -> None:
        """Jobs the cluster closed itself because their worker left: out of
        ``worker_spec`` (so they are not submitted again), replaced once."""
        for name, job_id in list(self._known.items()):
            if name in jobs:
                continue
            del self._known[name]
            if name in self.cluster.worker_spec:
                self._gone(name, job_id, now)
        self._known.update(jobs)

    def _ask(self, jobs: dict[str, str], now: float) -> bool:
        """One squeue for ``jobs`` into ``states``; False (states kept) when SLURM
        did not answer."""
        if not jobs:
            self.states = {}
            return True
        try:
            states = slurm.queue(jobs.values())
        except slurm.SlurmUnavailable as err:
            if self.silent_since is None:
                self.silent_since = now
                said = (err.stderr.strip() or err.stdout.strip() or f"exit {err.code}")
                self.say(f"SLURM did not answer ({said.splitlines()[-1]}); the jobs are "
                         "left as they are until it answers again")
            return False
        if self.silent_since is not None:
            self.say(f"SLURM answers again, after {now - self.silent_since:.0f} s without "
                     "an answer")
            self.silent_since = None
        self.states, self.answered = states, True
        return True

    def _worker_names(self) -> set[str]:
        """Names of the workers connected to the scheduler, as the cluster last heard."""
        info = getattr(self.cluster, "scheduler_info", None) or {}
        return {str(w.get("name")) for w in info.get("workers", {}).values()}

    def _gone(self, name: str, job_id: str, now: float) -> None:
        started = self._started.get(job_id)
        life, _ = lifetime(self.walltime)
        expected = started is not None and now - started >= life - 2
        if expected or job_id in self._replaced:
            self.retired.append(job_id)
            self.say(f"job {job_id} retired before its walltime")
        else:
            self.lost.append(job_id)
            self.say(f"job {job_id} was lost (cancelled, killed or pre-empted); "
                     "its tasks move to the other workers")
        # Let the cluster forget it: SpecCluster closes what is not in worker_spec.
        self.cluster.worker_spec.pop(name, None)
        if job_id not in self._replaced:
            self._replaced.add(job_id)
            self._add_job(f"replacing lost job {job_id}")
        else:
            self.cluster.loop.add_callback(self.cluster._correct_state)

    def _replace_ahead(self, jobs: dict[str, str], now: float) -> None:
        life, _ = lifetime(self.walltime)
        waiting = sum(1 for j in jobs.values()
                      if j in self.states and self.states[j].state == "PENDING")
        for job_id in jobs.values():
            started = self._started.get(job_id)
            if started is None or job_id in self._replaced:
                continue
            if self.target and waiting >= self.target:
                return  # enough replacements wait in the queue already; ask again later
            if now - started >= life - self.lead:
                waiting += 1
                self._replaced.add(job_id)
                self._add_job(f"job {job_id} nears its walltime: submitting its replacement")

    def _add_job(self, why: str) -> None:
        if self.replacements >= self.max_replacements:
            self.say(f"{why}: not done, {self.max_replacements} replacements already")
            return
        self.replacements += 1
        self.say(why)
        self.cluster.worker_spec.update(self.cluster.new_worker_spec())
        self.cluster.loop.add_callback(self.cluster._correct_state)


def _has_worker(job: str, connected: set[str]) -> bool:
    """Whether a worker of the job named ``job`` (``name`` or ``name-i`` with several
    processes per job) is connected."""
    return any(n == job or n.startswith(job + "-") for n in connected)
