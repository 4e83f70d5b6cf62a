"""From the model to a plan's numbers: compute and wall time on N jobs, CPU-hours, the
walltime that fits, worker generations, and the job count that gives the soonest result.

Pure functions. The time of a run's computation is modelled as its tasks in
rounds of the plan's threads, each task's bytes at the measured throughput of
one thread: ``ceil(tasks / threads) * (bytes_in / tasks) / rate``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from hpcscale import units
from hpcscale.predict.model import Startup, Throughput

# walltime = "auto": the predicted time (the slow end of its range, plus the start-up)
# and half of it again, at least AUTO_EXTRA more, rounded up to AUTO_STEP.
AUTO_MARGIN = 0.5
AUTO_EXTRA = 120
AUTO_STEP = 300
# Seconds a worker job is assumed to need to start its worker, without a measured start-up.
DEFAULT_STARTUP = 60.0
# An alternative is shown when it starts at least this much sooner than the plan.
SOONER = 60.0


def lifetime(walltime: int) -> tuple[int, int]:
    """Worker lifetime and stagger (seconds) for a job of ``walltime`` seconds.

    The worker retires gracefully (its results move to other workers) a margin
    before SLURM would kill it: 10% of the walltime, at least 20 s, at most
    10 minutes; staggered so the workers do not all retire at once.
    """
    margin = min(max(walltime // 10, 20), 600)
    stagger = min(max(walltime // 20, 2), 300)
    return max(walltime - margin - stagger, 10), stagger


def rounds(tasks: int, threads: int) -> int:
    return math.ceil(max(tasks, 1) / max(threads, 1))


def compute_seconds(rate: float, tasks: int, bytes_in: int, threads: int) -> float:
    """Seconds of computation for ``tasks`` tasks reading ``bytes_in`` in all on ``threads``."""
    return rounds(tasks, threads) * bytes_in / max(tasks, 1) / rate


def fitting_walltime(need: float, ceiling: int | None = None) -> int:
    """The walltime ``walltime = "auto"`` asks for a job that must live ``need`` seconds:
    ``need`` plus :data:`AUTO_MARGIN` of it (at least :data:`AUTO_EXTRA` s), rounded up to
    :data:`AUTO_STEP`, long enough that the worker's lifetime (:func:`lifetime`) covers
    ``need``; at most ``ceiling``."""
    wanted = need + max(need * AUTO_MARGIN, AUTO_EXTRA)
    walltime = max(AUTO_STEP, math.ceil(wanted / AUTO_STEP) * AUTO_STEP)
    while lifetime(walltime)[0] < need:
        walltime += AUTO_STEP
    return walltime if ceiling is None else min(walltime, ceiling)


def generations(need: float, walltime: int) -> int:
    """How many workers in turn a job slot needs to last ``need`` seconds (each retires
    before its ``walltime``, and the job watcher starts its replacement)."""
    return max(1, math.ceil(need / lifetime(walltime)[0]))


@dataclass(frozen=True)
class Start:
    """SLURM's expected start (``sbatch --test-only``) of ``jobs`` jobs of ``walltime``."""

    jobs: int
    walltime: int
    at: str  # as SLURM prints it, the controller's local time
    wait_s: float  # from when it was asked


@dataclass(frozen=True)
class Evidence:
    """What this site has measured, handed to the planner as data."""

    throughput: Throughput | None = None
    startup: Startup | None = None
    starts: tuple[Start, ...] = ()
    missing: str = ""  # why there is no throughput, as the plan says it

    def start(self, jobs: int, walltime: int | None) -> Start | None:
        return next((s for s in self.starts if s.jobs == jobs and s.walltime == walltime),
                    None)


@dataclass(frozen=True)
class Alternative:
    """A shape of the run that SLURM expects to start sooner than the plan's."""

    jobs: int
    walltime: int
    at: str
    wait_s: float
    result_s: float | None  # start + start-up + compute; None without a prediction
    why: str


@dataclass(frozen=True)
class Forecast:
    """What the plan predicts; every number None where it is not known.

    ``plan.json`` and ``plan --json`` carry it as it is; the report sets it beside
    what the run measured.
    """

    source: str  # where the throughput came from, or why there is none
    bytes_in: int
    bytes_out: int
    jobs: int = 0
    threads: int = 0
    tasks: int = 0
    rate: float | None = None  # bytes per second per thread
    compute_s: float | None = None
    compute_low_s: float | None = None
    compute_high_s: float | None = None
    startup_s: float | None = None  # the site's median time to a first worker
    wall_s: float | None = None  # start-up + compute
    job_need_s: float | None = None  # how long a worker job must live: start-up + slow compute
    fitting_walltime: int | None = None  # what walltime = "auto" asks for
    generations: int | None = None  # worker generations at the plan's walltime
    cpu_hours_requested: float | None = None  # jobs x cores x walltime (x generations)
    cpu_hours_predicted: float | None = None  # jobs x cores x predicted compute
    start: str | None = None  # SLURM's expected start of the plan's jobs
    start_wait_s: float | None = None
    result_s: float | None = None  # start wait + wall
    alternatives: tuple[Alternative, ...] = field(default=())
    # the (jobs, walltime) shapes whose expected start the planner weighs
    shapes: tuple[tuple[int, int], ...] = field(default=())

    @property
    def known(self) -> bool:
        return self.compute_s is not None

    def lines(self) -> list[str]:
        """The forecast as plan lines."""
        if self.compute_s is None:
            out = [f"predicted       unknown: {self.source}"]
        else:
            out = [
                f"predicted       compute {duration(self.compute_s)} "
                f"({duration(self.compute_low_s)} to {duration(self.compute_high_s)}) on "
                f"{self.threads} thread(s): {self.tasks} tasks in "
                f"{rounds(self.tasks, self.threads)} round(s)",
                f"  from          {self.source}",
            ]
            if self.wall_s is not None and self.startup_s is not None:
                out.append(f"  wall          {duration(self.wall_s)}, with this site's "
                           f"{duration(self.startup_s)} to a first worker")
        if self.generations is not None and self.generations > 1:
            out.append(f"  generations   {self.generations}: the run outlasts a worker's "
                       "walltime; each job's worker is replaced before it ends")
        if self.cpu_hours_requested is not None:
            line = (f"cpu-hours       {self.cpu_hours_requested:.2f} requested "
                    "(jobs x cores x walltime")
            line += " x generations)" if (self.generations or 1) > 1 else ")"
            if self.cpu_hours_predicted is not None:
                line += f", about {self.cpu_hours_predicted:.2f} for the predicted compute"
            out.append(line)
        if self.start is not None and self.start_wait_s is not None:
            line = (f"expected start  {_wait(self.start_wait_s)} ({self.start}, SLURM's "
                    "sbatch --test-only)")
            if self.result_s is not None:
                line += f"; result in about {duration(self.result_s)}"
            out.append(line)
        for alt in self.alternatives:
            line = (f"  sooner        {alt.jobs} job(s), walltime "
                    f"{units.format_walltime(alt.walltime)} ({alt.why}): {_wait(alt.wait_s)}")
            if alt.result_s is not None:
                line += f", result in about {duration(alt.result_s)}"
            out.append(line)
        return out


def forecast(
    evidence: Evidence, *, tasks: int, bytes_in: int, bytes_out: int, jobs: int,
    threads_per_job: int, cores_per_job: int | None = None, walltime: int | None = None,
    ceiling: int | None = None,
) -> Forecast:
    """The numbers of a plan of ``jobs`` jobs of ``threads_per_job`` threads.

    ``cores_per_job`` and ``walltime``: a SLURM plan's (CPU-hours, generations,
    expected start); ``ceiling``: the longest walltime the plan may ask for.
    """
    threads = jobs * threads_per_job
    start = evidence.start(jobs, walltime) if walltime is not None else None
    base = Forecast(evidence.missing, bytes_in, bytes_out, jobs, threads, tasks,
                    start=start.at if start else None,
                    start_wait_s=round(start.wait_s, 1) if start else None)
    requested = (jobs * cores_per_job * walltime / 3600
                 if cores_per_job is not None and walltime is not None else None)
    tp = evidence.throughput
    if tp is None:
        return dataclasses.replace(base, cpu_hours_requested=requested,
                        alternatives=_alternatives(evidence, None, base))
    compute = compute_seconds(tp.rate, tasks, bytes_in, threads)
    low = compute_seconds(tp.high, tasks, bytes_in, threads)
    high = compute_seconds(tp.low, tasks, bytes_in, threads)
    startup = evidence.startup.seconds if evidence.startup else None
    wall = compute + (startup or 0.0)
    need = job_need(evidence, tasks, bytes_in, threads)
    fits = gens = None
    predicted = None
    if walltime is not None:
        fits = fitting_walltime(need, ceiling)
        gens = generations(compute + _job_start(evidence), walltime)
        requested = requested * gens if requested is not None else None
    if cores_per_job is not None:
        predicted = jobs * cores_per_job * compute / 3600
    result = (start.wait_s + wall) if start is not None else None
    made = dataclasses.replace(
        base, source=tp.source, rate=round(tp.rate, 1), compute_s=_r(compute),
        compute_low_s=_r(low), compute_high_s=_r(high), startup_s=_r(startup),
        wall_s=_r(wall) if startup is not None else None, job_need_s=_r(need),
        fitting_walltime=fits,
        generations=gens, cpu_hours_requested=requested, cpu_hours_predicted=predicted,
        result_s=_r(result))
    return dataclasses.replace(made, alternatives=_alternatives(evidence, tp, made))


def _alternatives(evidence: Evidence, tp: Throughput | None, plan: Forecast
                  ) -> tuple[Alternative, ...]:
    """The shapes SLURM answered for that start at least :data:`SOONER` before the plan's."""
    if plan.start_wait_s is None:
        return ()
    found = []
    for s in evidence.starts:
        if s.wait_s > plan.start_wait_s - SOONER:
            continue
        why = "fewer jobs" if s.jobs < plan.jobs else "a shorter walltime"
        result = None
        if tp is not None:
            threads = s.jobs * (plan.threads // max(plan.jobs, 1))
            startup = evidence.startup.seconds if evidence.startup else 0.0
            result = _r(s.wait_s + startup
                        + compute_seconds(tp.rate, plan.tasks, plan.bytes_in, threads))
        found.append(Alternative(s.jobs, s.walltime, s.at, round(s.wait_s, 1), result, why))
    return tuple(sorted(found, key=lambda a: a.result_s if a.result_s is not None else a.wait_s))


def _job_start(evidence: Evidence) -> float:
    """Seconds a worker job takes to start its worker once running: the quickest start-up
    this site measured (its queue wait least), else :data:`DEFAULT_STARTUP`."""
    return evidence.startup.low if evidence.startup else DEFAULT_STARTUP


def job_need(evidence: Evidence, tasks: int, bytes_in: int, threads: int) -> float:
    """How long a worker job of a run on ``threads`` threads must live: its start-up and
    the slow end of the predicted compute."""
    if evidence.throughput is None:
        raise ValueError("job_need needs a throughput")
    return _job_start(evidence) + compute_seconds(evidence.throughput.low, tasks, bytes_in,
                                                  threads)


def choose_jobs(
    evidence: Evidence, *, tasks: int, bytes_in: int, threads_per_job: int, ceiling: int,
    bound: str, walltime_for: Callable[[int], int | None] = lambda _: None,
) -> tuple[int, str]:
    """``--jobs auto`` with a prediction: the job count, at most ``ceiling`` (set by
    ``bound``), with the soonest predicted result, and the decision line that says why.

    Without SLURM's expected starts: the fewest jobs that give the shortest compute
    (more would only idle). With them (for the same ``walltime``): among the job
    counts SLURM answered for (each at the walltime ``walltime_for`` gives it), the one
    whose start plus start-up plus compute is soonest; ties go to fewer jobs.
    """
    tp = evidence.throughput
    if tp is None:
        raise ValueError("choose_jobs needs a throughput")
    best = rounds(tasks, ceiling * threads_per_job)
    fewest = min(ceiling, max(1, math.ceil(tasks / (best * threads_per_job))))

    def compute(n: int) -> float:
        return compute_seconds(tp.rate, tasks, bytes_in, n * threads_per_job)

    why = (f"{fewest} job(s): the fewest with the shortest predicted compute, "
           f"{duration(compute(fewest))} ({tasks} tasks in {best} round(s) of "
           f"{fewest * threads_per_job} thread(s))")
    if ceiling * threads_per_job < tasks:  # more jobs than the bound allows would help
        why += f"; more jobs would finish sooner, but {bound} allows {ceiling}"
    startup = evidence.startup.seconds if evidence.startup else 0.0
    known = {s.jobs: s for s in evidence.starts
             if s.jobs <= fewest and s.walltime == walltime_for(s.jobs)}
    if fewest not in known:
        return fewest, why
    result = {n: s.wait_s + startup + compute(n) for n, s in known.items()}
    chosen = min(sorted(result), key=lambda n: result[n])
    if chosen == fewest:
        return fewest, why + f"; the soonest result, in about {duration(result[fewest])}"
    return chosen, (
        f"{chosen} job(s): the soonest predicted result, in about {duration(result[chosen])} "
        f"(SLURM's expected start {_wait(known[chosen].wait_s)} + "
        f"{duration(compute(chosen))} of compute), against {duration(result[fewest])} with "
        f"{fewest} job(s) ({_wait(known[fewest].wait_s)})")


def duration(seconds: float | None) -> str:
    """``4.2 s``, ``42 s``, ``3 min 05 s``, ``2 h 10 min``."""
    if seconds is None:
        return "?"
    if seconds < 9.95:
        return f"{max(0.0, seconds):.1f} s"
    s = round(seconds)
    if s < 100:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def _wait(seconds: float) -> str:
    return "now" if seconds < 1 else f"in {duration(seconds)}"


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
