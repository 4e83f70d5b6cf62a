"""The array engine: one SLURM job array, its tasks with no connection back to this node.

For sites whose compute nodes cannot reach the login node (no dask scheduler
there). ``sbatch --array=0-N%M`` runs N+1 tasks, at most M at once (M: the
plan's job count, within the profile's and the queue's limits); each runs
:mod:`hpcscale.run.filemap.arraytask` on its share of the files and writes a row
per file to a rows file of its own in the output folder. This node only
submits the array, watches ``squeue`` (a query that fails means "unknown", never
"gone") and reads the rows as they come; the array is named after the run, so
``hpcscale status/logs/cancel`` work on it, and it is cancelled on Ctrl-C and on
any error.
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpcscale import slurm, units
from hpcscale._fs import atomic_write, write_json
from hpcscale.backends.watch import NEVER_STARTS
from hpcscale.config.profiles import SlurmProfile
from hpcscale.errors import ProfileError, RunError, SubmissionError
from hpcscale.run.execution import recorded
from hpcscale.run.filemap import arraytask, task
from hpcscale.run.filemap.index import MapFile
from hpcscale.run.filemap.preparation import array_tasks
from hpcscale.rundir import RunDir, RunState
from hpcscale.slurm.directives import sbatch_directives, sbatch_path

if TYPE_CHECKING:
    from hpcscale.run.filemap.preparation import MapPrepared
    from hpcscale.run.filemap.types import MapSummary
    from hpcscale.run.types import Reporter

ASK = 3.0  # seconds between squeue calls
READ = 0.5  # seconds between reads of the rows files


def render(prep: MapPrepared, rundir: RunDir, tasks: int) -> str:
    """The array's batch script: the profile's job size and directives, its prologue,
    and the task's one command."""
    profile = prep.profile
    if not isinstance(profile, SlurmProfile):
        raise ProfileError(f"engine array: site {profile.name} is a local profile")
    s = profile.slurm
    out, err = (sbatch_path(p.parent, "run directory") + "/" + p.name
                for p in rundir.array_output)
    head = sbatch_directives(
        s, job_name=rundir.job_name, walltime=prep.plan.walltime or s.walltime_seconds,
        cpus=s.cores, memory=units.slurm_mem(s.memory), files=[
            f"--chdir={sbatch_path(Path.cwd(), 'working directory')}",
            f"--output={out}", f"--error={err}",
            f"--array=0-{tasks - 1}%{prep.plan.jobs}",
        ])
    python = s.python or _python()
    lines = ["#!/usr/bin/env bash", *(f"#SBATCH {h}" for h in head), "#",
             f"# hpcscale map run {rundir.run_id}: {len(prep.todo)} file(s) of "
             f"{prep.spec.map.files!r} through {prep.fn.spec},",
             f"# in {tasks} array task(s), at most {prep.plan.jobs} at once. Each task reads its "
             "share of the files",
             f"# from {rundir.array_plan} and writes a row per file under",
             f"# {prep.results.rows_dir}; it needs no connection to the node that submitted it.",
             "# Follow it with `hpcscale status` and `hpcscale logs`, stop it with",
             "# `hpcscale cancel`.",
             "", "set -e", ""]
    if s.prologue:
        lines += ["# Environment, from the profile's prologue.",
                  "# shellcheck disable=SC1090,SC1091  # site set-up files cannot be followed",
                  "{", *(f"    {p}" for p in s.prologue), "}", ""]
    lines.append("exec " + shlex.join([python, "-m", arraytask.__name__, str(rundir.path)]))
    return "\n".join(lines) + "\n"


def _python() -> str:
    import sys

    return sys.executable


def run(prep: MapPrepared, reporter: Reporter, rundir: RunDir, summary: MapSummary) -> None:
    """Submit the array for ``prep.todo``, follow it to its end and record its rows."""
    todo = list(prep.todo)
    tasks = array_tasks(len(todo), prep.plan)
    with recorded(rundir, summary, queued=True) as outcome:
        rundir.update(state=RunState.STARTING)
        rundir.logs.mkdir(parents=True, exist_ok=True)
        write_json(rundir.array_plan, {
            "results": str(prep.results.path), "rows": str(prep.results.rows_dir),
            "tasks": tasks, "module": prep.fn.module, "function": prep.fn.spec,
            "where": prep.spec.where, "source": prep.fn.path.name if prep.fn.path else "",
            "files": [[f.key, f.file, f.dir] for f in todo],
        })
        atomic_write(rundir.array_function, _pickled(prep), mode=0o600)
        atomic_write(rundir.array_script, render(prep, rundir, tasks))
        job_id = slurm.submit_script(rundir.array_script)
        summary.array_job = job_id
        summary.jobs = [job_id]
        rundir.update(state=RunState.PENDING, jobs={job_id: "PENDING"})
        reporter.info(f"run {rundir.run_id}: job array {job_id}, {tasks} task(s), at most "
                      f"{prep.plan.jobs} at once (hpcscale status {rundir.run_id})")
        try:
            _follow(prep, reporter, rundir, summary, job_id, todo, tasks)
        except BaseException:
            slurm.cancel([job_id])
            raise
        outcome.failure = summary.problem()


def _pickled(prep: MapPrepared) -> bytes:
    import cloudpickle

    return bytes(cloudpickle.dumps((prep.fn.func, prep.kwargs)))


def _follow(prep: MapPrepared, reporter: Reporter, rundir: RunDir, summary: MapSummary,
            job_id: str, todo: list[MapFile], tasks: int) -> None:
    """Read the rows as the tasks write them until the array has left the queue."""
    follower = _Follower(prep, reporter, rundir, summary, job_id, todo)
    last_ask = -ASK
    while True:
        follower.read()
        now = time.monotonic()
        if now - last_ask >= ASK:
            last_ask = now
            if follower.gone(now):
                break
        time.sleep(READ)
    follower.read()  # the rows the last tasks wrote as they ended
    if rundir.status().state == RunState.CANCELLED:  # `hpcscale cancel` ended the array
        raise KeyboardInterrupt(f"job array {job_id} cancelled with `hpcscale cancel`")
    ended = ([] if summary.stopped
             else _ended_midway(prep, rundir, job_id, todo, tasks, follower.done))
    prep.results.append(ended)
    summary.failed += len(ended)
    summary.not_run = len(todo) - len(follower.done) - len(ended)
    rundir.update(jobs={job_id: "GONE"})


class _Follower:
    """The array as this node sees it: the rows read so far and the queue's answers."""

    def __init__(self, prep: MapPrepared, reporter: Reporter, rundir: RunDir,
                 summary: MapSummary, job_id: str, todo: list[MapFile]) -> None:
        self.prep, self.reporter, self.rundir, self.summary = prep, reporter, rundir, summary
        self.job_id = job_id
        self.wanted = {f.key for f in todo}
        self.total = len(todo)
        self.done: set[str] = set()
        self.failures = 0
        self.silent_since: float | None = None
        self.running = False

    def read(self) -> None:
        """New rows; an import refusal of a task (one line); ``--max-failures``."""
        results, summary = self.prep.results, self.summary
        for row in results.new_rows(f"{self.job_id}_*.jsonl"):
            key = row.get("key")
            if isinstance(key, str) and key in self.wanted and key not in self.done:
                self.done.add(key)
                if row.get("status") == task.OK:
                    summary.ok += 1
                else:
                    summary.failed += 1
                    self.failures += 1
        refused = sorted(results.rows_dir.glob(f"{self.job_id}_*.error"))
        if refused:
            slurm.cancel([self.job_id])
            raise RunError(refused[0].read_text("utf-8", errors="replace").strip())
        limit = self.prep.max_failures
        if limit is not None and self.failures >= limit and summary.stopped is None:
            slurm.cancel([self.job_id])
            summary.stopped = f"stopped after {self.failures} failure(s) (--max-failures {limit})"
            self.reporter.info(summary.stopped)
        self.reporter.progress(len(self.done), self.total)

    def gone(self, now: float) -> bool:
        """Whether a working squeue no longer lists the array (no answer: not gone)."""
        try:
            states = slurm.queue([self.job_id])
        except slurm.SlurmUnavailable as err:
            if self.silent_since is None:
                self.silent_since = now
                said = err.stderr.strip() or err.stdout.strip() or f"exit {err.code}"
                self.reporter.info(f"SLURM did not answer ({said.splitlines()[-1]}); the array "
                                   "is left as it is until it answers again")
            return False
        if self.silent_since is not None:
            self.reporter.info(f"SLURM answers again, after {now - self.silent_since:.0f} s")
            self.silent_since = None
        if not states:
            return True
        self.running = _track(self.rundir, self.reporter, states, self.job_id, self.running,
                              len(self.done), self.total)
        return False


def _track(rundir: RunDir, reporter: Reporter, states: dict[str, slurm.JobState], job_id: str,
           running: bool, done: int, total: int) -> bool:
    """Record and show the array's tasks; fail at once on a reason that never resolves."""
    pending = [s for s in states.values() if s.state == "PENDING"]
    active = [s for s in states.values() if s.state != "PENDING"]
    for s in pending:
        if s.reason in NEVER_STARTS:
            raise SubmissionError(f"job array {job_id} can never start: SLURM says {s.reason} "
                                  f"(partition {s.partition}); check the profile with "
                                  "`hpcscale site check`")
    if active and not running:
        rundir.update(state=RunState.RUNNING)
        running = True
    rundir.update(jobs={j: s.state for j, s in states.items()})
    waiting = sum(_count(s.job_id) for s in pending)
    reasons = sorted({s.reason for s in pending if s.reason not in ("None", "")})
    why = f" ({', '.join(reasons)})" if reasons else ""
    reporter.status(f"array {job_id}: {waiting} task(s) pending{why}, {len(active)} running; "
                    f"files: {done}/{total}")
    return running


_RANGE = re.compile(r"_\[([0-9,\-]+)(?:%\d+)?\]$")


def _count(job_id: str) -> int:
    """How many array tasks one squeue line stands for: ``123_[4-9%3]`` is six."""
    m = _RANGE.search(job_id)
    if not m:
        return 1
    n = 0
    for part in m.group(1).split(","):
        lo, _, hi = part.partition("-")
        n += int(hi) - int(lo) + 1 if hi else 1
    return n


def _ended_midway(prep: MapPrepared, rundir: RunDir, job_id: str, todo: list[MapFile],
                  tasks: int, done: set[str]) -> list[dict[str, Any]]:
    """A failed row for the file each task was processing when it ended without
    finishing its share (walltime, memory, a crash); its later files stay not run."""
    rows = []
    for index in range(tasks):
        started = (prep.results.rows_dir / f"{job_id}_{index}.jsonl").exists()
        missing = [f for f in arraytask.share(todo, tasks, index) if f.key not in done]
        if not started or not missing:
            continue
        f = missing[0]
        rows.append({"status": task.FAILED, "seconds": float("nan"),
                     "worker": f"array task {index}", "values": {}, "t": time.time(),
                     "error": f"array task {index} ended while processing it (out of memory, "
                              f"over its walltime, or cancelled?); see `hpcscale logs "
                              f"{rundir.run_id}`",
                     "key": f.key, "file": f.file, "dir": f.dir})
    return rows
