"""hpcscale from Python and Jupyter: the machinery of the CLI as functions.

::

    import hpcscale

    with hpcscale.cluster("mylab", jobs=10) as client:   # a dask Client on the site's jobs
        total = dask.array.ones((40_000, 40_000)).sum().compute()

    hpcscale.plan("jobs/climate-mean.toml", site="mylab")          # the plan, nothing submitted
    hpcscale.submit("jobs/climate-mean.toml", site="mylab", jobs=4)  # the run's summary
    hpcscale.map("scans/*.tif", "mylab/segment.py:segment", "results/", site="mylab")

These are the functions the commands call; they take the same values (a site
name, ``jobs`` a number or ``"auto"``) and raise the same one-line errors
(:class:`hpcscale.errors.HpcscaleError`). ``import hpcscale`` loads this module
only when one of them is first used, so the command line starts fast.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcscale import run, sizing, units
from hpcscale.config import jobspec, profiles
from hpcscale.errors import HpcscaleError, UsageError
from hpcscale.run import filemap
from hpcscale.run.dasklog import dask_logs_to
from hpcscale.run.execution import cluster_session
from hpcscale.run.preparation import live_limits
from hpcscale.run.types import Summary
from hpcscale.rundir import RunDir

__all__ = ["cluster", "map", "plan", "submit"]

Spec = str | Path | jobspec.JobSpec | jobspec.MapSpec


class Printer:
    """A reporter for notebooks and scripts: hpcscale's own lines, printed; no progress bar."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet

    def status(self, text: str) -> None:
        pass

    def progress(self, done: int, total: int) -> None:
        pass

    def info(self, text: str) -> None:
        if not self.quiet:
            builtins.print(f"hpcscale: {text}", flush=True)


def _spec(spec: Spec) -> jobspec.JobSpec | jobspec.MapSpec:
    if isinstance(spec, jobspec.JobSpec | jobspec.MapSpec):
        return spec
    return jobspec.load_any(spec)


def _jobs(jobs: int | str | None) -> int | str | None:
    if jobs is None or jobs == "auto":
        return jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"jobs={jobs!r}: expected a whole number of at least 1, or 'auto'")
    return jobs


def plan(spec: Spec, *, site: str | None = None, jobs: int | str | None = None) -> sizing.Plan:
    """The plan of a job spec (a path, or a spec object): jobs, walltime, memory and the
    decisions behind them (``plan.lines()``); nothing is submitted or written."""
    loaded = _spec(spec)
    if isinstance(loaded, jobspec.MapSpec):
        return filemap.prepare(loaded, site, _jobs(jobs)).plan
    return run.prepare(loaded, site, _jobs(jobs)).plan


def submit(
    spec: Spec, *, site: str | None = None, jobs: int | str | None = None,
    overwrite: bool | None = None, quiet: bool = False,
) -> Summary | filemap.MapSummary:
    """Run a job spec to the end, as ``hpcscale submit`` does, and return its summary
    (``.output``, ``.seconds``, ``.jobs``...). Every job is cancelled when it returns,
    raises or is interrupted. A ``[map]`` spec whose files failed returns its summary
    too (``.failed``); ``summary.check()`` raises the one-line error the CLI exits 1 with."""
    loaded = _spec(spec)
    reporter = Printer(quiet)
    if isinstance(loaded, jobspec.MapSpec):
        mprep = filemap.prepare(loaded, site, _jobs(jobs), overwrite=overwrite)
        return filemap.execute(mprep, reporter)
    prep = run.prepare(loaded, site, _jobs(jobs), overwrite=overwrite)
    reporter.info("\n".join(prep.plan.lines()))
    return run.execute(prep, reporter)


def map(
    files: str, fn: str, output: str | Path, *, kwargs: Mapping[str, Any] | None = None,
    site: str | None = None, jobs: int | str | None = None, engine: str = "dask",
    max_failures: int | None = None, overwrite: bool = False, quiet: bool = False,
) -> filemap.MapSummary:
    """Run ``fn`` once per file of the glob ``files``, as ``hpcscale map`` does: a folder
    per file under ``output``, the index in ``output/index.zarr`` (``xarray.open_zarr``)
    and ``index.csv``. ``fn`` is ``"module:function"`` or ``"path/to/file.py:function"``,
    with the signature ``f(path, out_dir, **kwargs) -> dict | None``. Returns the summary
    (``.ok``, ``.failed``, ``.index``); files that failed do not raise: see
    ``summary.failed`` or call ``summary.check()``."""
    spec = jobspec.map_spec(files, str(output), fn, kwargs=kwargs, engine=engine,
                            max_failures=max_failures, overwrite=overwrite)
    summary = submit(spec, site=site, jobs=jobs, quiet=quiet)
    assert isinstance(summary, filemap.MapSummary)
    return summary


@dataclass(frozen=True)
class _Session:
    """What a ``cluster()`` session records in its run directory in place of a job spec."""

    description: str = "hpcscale.cluster(): a dask cluster for the user's own code"
    output_path: str = ""

    def to_toml(self) -> str:
        return f'description = "{self.description}"\n'


@contextmanager
def cluster(
    site: str | None = None, *, jobs: int = 1, walltime: str | int | None = None,
    quiet: bool = False,
) -> Iterator[Any]:
    """A dask ``Client`` on ``jobs`` worker jobs of the site's profile, for your own dask
    code; every job is cancelled when the ``with`` block ends, also when it raises or
    the kernel is interrupted.

    The cluster is the one a run gets: TLS with per-session certificates, the
    dashboard on this node's loopback (its link and the ssh line to reach it are
    printed), jobs clamped to the site's and the partition's limits, and a job
    watcher that replaces lost jobs and workers nearing their walltime. The session
    is a run like any other: ``hpcscale status``, ``logs`` and ``cancel`` see it.
    """
    jobs_ = _jobs(jobs)
    if not isinstance(jobs_, int):
        raise UsageError(f"jobs={jobs!r}: a cluster session needs a number of jobs")
    resolved = profiles.load(run.choose_site(site))
    seconds = None
    if walltime is not None:
        try:
            seconds = units.parse_walltime(walltime)
        except ValueError as err:
            raise UsageError(f"walltime={walltime!r}: {err}") from None
    workload = sizing.Workload(chunks=jobs_ * 64, chunk_bytes=0, bytes_in=0, bytes_out=0)
    the_plan = sizing.plan(resolved.profile, workload, jobs_,
                           live_limits(resolved.profile), walltime=seconds)
    reporter = Printer(quiet)
    for line in the_plan.lines():
        reporter.info(line)
    rundir = RunDir.create(_Session(), resolved.profile, the_plan,
                           profile_files=resolved.files)
    summary = Summary(rundir.run_id, str(rundir.path), resolved.profile.name, "", 0.0, 0, 0)
    with dask_logs_to(rundir.dask_log, say=reporter.info), \
            cluster_session(resolved.profile, the_plan, reporter, rundir, summary) as session:
        stop = threading.Event()
        watcher = threading.Thread(target=_watch, args=(session, stop, reporter),
                                   name="hpcscale-watch", daemon=True)
        watcher.start()
        try:
            yield session.client
        finally:
            stop.set()
            watcher.join()


def _watch(session: Any, stop: threading.Event, reporter: Printer) -> None:
    """Poll the job watcher while the user's code runs (the compute loop does it in a run)."""
    if session.watcher is None:
        return
    while not stop.wait(1.0):
        try:
            connected = len(session.client.scheduler_info(n_workers=-1)["workers"])
            session.watcher.poll(connected)
        except HpcscaleError as err:
            reporter.info(f"the jobs: {err}")
            return
        except Exception as err:  # the client closing under us at the end of the session
            if not stop.is_set():
                reporter.info(f"the job watcher stopped: {type(err).__name__}: {err}")
            return
