"""The run itself: start the cluster, wait for workers, compute, and always tear the
jobs down, on errors and Ctrl-C too."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from hpcscale import backends, sizing, slurm
from hpcscale._meta import STARTED
from hpcscale.backends import watch, worker
from hpcscale.config import profiles
from hpcscale.errors import SubmissionError
from hpcscale.run import compute
from hpcscale.run.dasklog import dask_logs_to
from hpcscale.run.types import Prepared, Reporter, Silent, Summary
from hpcscale.rundir import RunDir, RunState

# How long to wait for every requested worker before computing with those that came.
WAIT_FOR_WORKERS = 180.0


LAPTOP_PORT = 8787  # where the ssh line puts the dashboard on the user's laptop


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (logout) raise KeyboardInterrupt, so the jobs are
    torn down and the exit code says the run was interrupted.

    SIGINT is set too because importing dask_jobqueue replaces its handler
    with ``sys.exit()``, which would end an interrupted run with exit code 0.
    """

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def execute(
    prep: Prepared, reporter: Reporter | None = None, run_dir: RunDir | None = None, *,
    keep_logs: bool = False,
) -> Summary:
    """Run a prepared job: start the cluster, compute, write, always clean up.

    ``run_dir``: an existing run directory to use (a batch run's, adopted by its
    driver); by default a new one is made. dask's own log records go to the run's
    ``RunDir.dask_log`` (:func:`dask_logs_to`), not to the terminal; with ``keep_logs``
    (the CLI: its process ends with the run) they stay there after the run.
    """
    reporter = reporter or Silent()
    rundir = run_dir or RunDir.create(prep.spec, prep.profile, prep.plan,
                                      trusted=prep.trusted, profile_files=prep.profile_files)
    with dask_logs_to(rundir.dask_log, keep=keep_logs,
                      say=lambda text: reporter.info(f"warning: {text}")):
        return _execute(prep, reporter, rundir)


def _execute(prep: Prepared, reporter: Reporter, rundir: RunDir) -> Summary:
    summary = Summary(
        rundir.run_id, str(rundir.path), prep.profile.name, prep.spec.output.path, 0.0,
        prep.plan.workload.bytes_in, prep.plan.workload.bytes_out,
    )
    with cluster_session(prep.profile, prep.plan, reporter, rundir, summary,
                         imports=prep.spec.user_modules) as session:
        write, summary.compute_s = compute.write_result(prep, session.client, reporter,
                                                        session.watcher, rundir)
        summary.blocks, summary.blocks_resumed = write.total, write.resumed
    return summary


@dataclass
class Outcome:
    """What the body of :func:`recorded` says of a run that ended without an exception:
    ``failure`` (one line) makes its state ``failed`` (a map run whose files failed)."""

    failure: str | None = None


@dataclass
class Session:
    """A started cluster with its workers connected: what :func:`cluster_session` yields."""

    cluster: Any
    client: Any
    watcher: watch.JobWatcher | None
    outcome: Outcome


@contextmanager
def recorded(rundir: RunDir, summary: Summary, *, queued: bool) -> Iterator[Outcome]:
    """A run's record around its body: Ctrl-C, SIGTERM and SIGHUP raise
    KeyboardInterrupt; the state ends ``done``, ``failed`` (an exception, or the body's
    ``Outcome.failure``) or ``cancelled``; with ``queued`` (a SLURM run) every job named
    after the run is cancelled; then ``summary.json`` and the report are written."""
    t0 = time.monotonic()
    outcome = Outcome()
    try:
        with _signals_raise():
            yield outcome
        if outcome.failure:
            rundir.update(state=RunState.FAILED, error=outcome.failure)
        else:
            rundir.update(state=RunState.DONE)
    except KeyboardInterrupt:
        rundir.update(state=RunState.CANCELLED)
        raise
    except Exception as err:
        rundir.update(state=RunState.FAILED, error=str(err))
        raise
    finally:
        if queued:
            _leave_nothing_queued(rundir.job_name)
        summary.seconds = time.monotonic() - t0
        rundir.write_summary(dataclasses.asdict(summary))
        draw_report(rundir.path)


# Set (to anything) to draw the report in the run's own process, before it returns.
REPORT_INLINE = "HPCSCALE_REPORT_INLINE"


def draw_report(path: Path) -> None:
    """The run's ``report.html``, drawn by a child process that this one does not wait
    for: importing matplotlib and drawing take one to two seconds the result does not
    need (``hpcscale report RUN`` draws a missing report on demand). Inside a SLURM job,
    whose end would kill that child, or with ``HPCSCALE_REPORT_INLINE`` set, it is drawn
    here before returning."""

    def here() -> None:
        from hpcscale import report  # matplotlib: imported only once a run is over

        report.write_report(path)

    if os.environ.get("SLURM_JOB_ID") or os.environ.get(REPORT_INLINE):
        here()
        return
    try:
        subprocess.Popen(  # our own module, our own interpreter
            [sys.executable, "-m", "hpcscale.report", str(path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C at the terminal does not reach it
        )
    except OSError:
        here()


@contextmanager
def cluster_session(
    profile: profiles.SiteProfile, plan: sizing.Plan, reporter: Reporter, rundir: RunDir,
    summary: Summary, *, imports: Sequence[tuple[str, str]] = (),
) -> Iterator[Session]:
    """Start the profile's cluster as ``plan`` lays it out, wait for its workers while
    the job watcher follows the jobs, import each ``(where, module)`` of ``imports`` (a
    user's functions') on one worker before any work is handed out (a one-line
    ``RunError`` naming ``where`` if one does not import there), and yield; whatever
    happens, every job is cancelled and the run recorded (:func:`recorded`). Fills the
    cluster's part of ``summary``."""
    with recorded(rundir, summary, queued=isinstance(profile, profiles.SlurmProfile)) as outcome:
        job_name = rundir.job_name
        rundir.update(state=RunState.STARTING)
        started = time.time()
        summary.startup_s = _startup_seconds(started)
        walltime = plan.walltime or 0
        with backends.start(
            profile, plan, job_name=job_name, run_dir=rundir,
            worker_extra_args=watch.worker_args(walltime) if walltime else None,
        ) as (clus, client):
            watcher = (watch.JobWatcher(clus, walltime, reporter.info, job_name=job_name,
                                        target=plan.jobs)
                       if walltime else None)
            link = _dashboard(client)
            forward = ssh_forward(link)
            rundir.update(state=RunState.PENDING, scheduler=clus.scheduler_address,
                          dashboard=link, forward=forward,
                          log_directory=profile.slurm.log_directory
                          if isinstance(profile, profiles.SlurmProfile) else None)
            reporter.info(f"run {rundir.run_id}: dashboard {link}" if link else
                          f"run {rundir.run_id}: in this process, on dask's threaded scheduler")
            if forward:
                reporter.info(f"  from your laptop: {forward}  "
                              f"then open http://localhost:{LAPTOP_PORT}/status")
            expected = plan.jobs * plan.workers_per_job
            summary.first_worker_s = _wait_for_workers(
                client, watcher, expected, reporter, rundir, started)
            for where, module in imports:  # before any work is handed out
                worker.check_imports(client, [module], where)
            rundir.update(state=RunState.RUNNING)
            yield Session(clus, client, watcher, outcome)
            _what_happened(summary, clus, client, watcher)


def _what_happened(summary: Summary, clus: Any, client: Any,
                   watcher: watch.JobWatcher | None) -> None:
    summary.peak_memory = compute.peak_memory(client)
    summary.jobs = sorted(watch.cluster_jobs(clus).values())
    if watcher is not None:
        summary.lost_jobs = watcher.lost
        summary.retired_jobs = watcher.retired
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    summary.workers = len(workers)
    summary.nodes = sorted({w.get("host", "") for w in workers})


def _dashboard(client: Any) -> str:
    """The dashboard's address as it listens: on loopback only (backends.start binds it
    there), though dask's link names the scheduler's interface."""
    link = str(client.dashboard_link or "")
    url = urlsplit(link)
    if not url.hostname or not url.port:
        return link
    return url._replace(netloc=f"127.0.0.1:{url.port}").geturl()


def ssh_forward(link: str, environ: Mapping[str, str] | None = None) -> str:
    """The ssh line that forwards the dashboard of ``link`` to ``localhost:8787`` on a laptop.

    :func:`backends.start` binds the dashboard to this node's loopback (the link
    names the scheduler's host instead), so the tunnel ends on this node: the
    login node for an interactive run; inside a batch job (``SLURM_JOB_ID``) the
    compute node, reached through the submit host.
    """
    env = os.environ if environ is None else environ
    port = urlsplit(link).port if link else None
    if not port:
        return ""
    node = os.uname().nodename
    target = f"{LAPTOP_PORT}:127.0.0.1:{port}"
    login = env.get("SLURM_SUBMIT_HOST")
    if env.get("SLURM_JOB_ID") and login:
        return f"ssh -N -L {target} -J {login} {env.get('SLURMD_NODENAME') or node}"
    return f"ssh -N -L {target} {node}"


_RUNS_STARTED: list[float] = []  # the runs this process has executed (demo runs several)


def _startup_seconds(started: float) -> float:
    """From the command's start to ``started``, for the command's first run; else 0."""
    _RUNS_STARTED.append(started)
    if len(_RUNS_STARTED) > 1:
        return 0.0
    return max(0.0, started - STARTED)


def _wait_for_workers(
    client: Any, watcher: watch.JobWatcher | None, expected: int, reporter: Reporter,
    rundir: RunDir, started: float,
) -> float | None:
    """Wait for ``expected`` workers; the seconds from ``started`` to the first one."""
    deadline = time.monotonic() + WAIT_FOR_WORKERS
    job_name = f"hpcscale-{rundir.run_id}"
    worker_logs = rundir.worker_logs
    first: float | None = None
    warmed: set[str] = set()
    while True:
        addresses = set(client.scheduler_info(n_workers=-1)["workers"])
        connected = len(addresses)
        if connected and first is None:
            first = time.time() - started
        if addresses - warmed:  # before any task runs: see hpcscale.worker
            client.run(worker.warm, workers=sorted(addresses - warmed), on_error="ignore")
            warmed |= addresses
        ids: list[str] = []
        states: dict[str, slurm.JobState] = {}
        if watcher is not None:
            watcher.poll(connected)
            ids, states = list(watcher.jobs().values()), watcher.states
        pending = [s for s in states.values() if s.state == "PENDING"]
        running = [s for s in states.values() if s.state == "RUNNING"]
        if ids:
            rundir.update(jobs={i: (states[i].state if i in states else "GONE") for i in ids})
            reasons = sorted({s.reason for s in pending if s.reason not in ("None", "")})
            why = f" ({', '.join(reasons)})" if reasons else ""
            reporter.status(f"jobs: {len(pending)} pending{why}, {len(running)} running; "
                            f"workers: {connected}/{expected} connected")
        else:
            reporter.status(f"workers: {connected}/{expected} connected")
        rundir.sample(client, phase="waiting", jobs=states)
        if connected >= expected:
            return first
        answered = watcher is not None and watcher.answered and watcher.silent_since is None
        if ids and answered and not states and not connected:
            raise SubmissionError(
                f"all {len(ids)} worker job(s) ended without a worker connecting: "
                f"{_last_error(worker_logs, job_name, watcher)}"
            )
        if time.monotonic() > deadline:
            if connected:
                reporter.info(f"{connected}/{expected} workers after {WAIT_FOR_WORKERS:.0f} s; "
                              "computing with those")
                return first
            detail = "; ".join(f"job {s.job_id} {s.state} ({s.reason})" for s in states.values())
            raise SubmissionError(
                f"no worker connected within {WAIT_FOR_WORKERS:.0f} s: "
                f"{detail or 'the jobs left the queue without starting a worker'}; "
                f"see the logs in {worker_logs}"
            )
        time.sleep(0.2)


def _last_error(logs: Path, job_name: str, watcher: watch.JobWatcher | None = None) -> str:
    """The last top-level error line of the first failed worker job of this run (its
    ``.err`` file in ``logs``, named ``<job name>-<job id>.err``), with its node."""

    def job_id(err: Path) -> tuple[int, str]:
        tail = err.stem[len(job_name) + 1:]
        return (int(tail), tail) if tail.isdigit() else (1 << 62, tail)

    for err in sorted(logs.glob(f"{job_name}-*.err"), key=job_id):
        try:
            text = err.read_text(errors="replace")
        except OSError:
            continue
        line = _root_error(text)
        if line:
            _, jid = job_id(err)
            node = (watcher.nodes.get(jid) if watcher is not None else None) \
                or slurm.job_node(jid)
            where = f"job {jid} on node {node}" if node else f"job {jid}"
            return f"{where}: {line} (log: {err})"
    return f"no error in the worker logs (see {logs})"


_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(:.*)?$")


_CHAINED = ("The above exception was the direct cause", "During handling of the above exception")


def _root_error(text: str) -> str:
    """The error a worker log ends with: the last traceback's root cause (dask's
    ``RuntimeError: Worker failed to start.`` says less than the ``ValueError`` that
    caused it), else its last line that mentions an error."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    found = [i for i, ln in enumerate(lines) if _EXCEPTION.match(ln)]
    if not found:
        plain = [ln for ln in lines if ln and not ln[0].isspace()
                 and ("Error" in ln or "error" in ln)]
        return plain[-1].strip() if plain else ""
    at = found[-1]
    while True:
        header = next((i for i in range(at, -1, -1)
                       if lines[i].startswith("Traceback (most recent call last)")), None)
        above = next((lines[i] for i in range(header - 1, -1, -1) if lines[i].strip()),
                     "") if header else ""
        cause = [i for i in found if i < (header or 0)]
        if not above.startswith(_CHAINED) or not cause:
            return lines[at].strip()
        at = cause[-1]


def _leave_nothing_queued(job_name: str, timeout: float = 30.0) -> None:
    """After the cluster closed: cancel any job of this run still queued and wait
    (bounded) until SLURM has taken each in hand: gone, or COMPLETING.

    A COMPLETING job is one SLURM is already killing; waiting for it to leave
    the queue would wait out the site's KillWait (often 30 s) for nothing.
    """
    if not slurm.available():
        return
    # A batch run's driver job has the run's name too: it must not cancel itself.
    own = os.environ.get("SLURM_JOB_ID")
    deadline = time.monotonic() + timeout
    cancelled: set[str] = set()
    while time.monotonic() < deadline:
        try:
            left = _alive(job_name, own)
        except slurm.SlurmUnavailable:
            # no answer is not "nothing left": ask again until the deadline
            time.sleep(1.0)
            continue
        except SubmissionError:
            return  # no squeue at all: dask-jobqueue has already cancelled what it started
        if not left:
            return
        if set(left) - cancelled:
            slurm.cancel(left)
            cancelled.update(left)
        time.sleep(0.2)


def _alive(job_name: str, own: str | None) -> list[str]:
    """This run's jobs that SLURM is not yet ending."""
    return [j for j, s in slurm.queue(name=job_name).items()
            if j != own and s.state != "COMPLETING"]
