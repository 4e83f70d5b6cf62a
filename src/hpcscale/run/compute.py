"""Compute a prepared graph on a running cluster and write it to Zarr, block by block.

Each output block is one future. As blocks finish, the driver records them
in the store's manifest, so a run killed at any moment resumes from what
was written (:mod:`hpcscale.io.manifest`). While it waits it reports
progress, lets the job watcher replace lost and retiring jobs, and samples
the cluster into the run's timeline for the report.
"""

from __future__ import annotations

import contextlib
import resource
import time
from typing import TYPE_CHECKING, Any

from distributed import performance_report, wait

from hpcscale import __version__
from hpcscale.errors import InputError, RunError
from hpcscale.io import output
from hpcscale.io._source import one_line
from hpcscale.ops import BIN_DIM, Histogram
from hpcscale.rundir import DASK_REPORT, DASK_REPORT_AFTER

if TYPE_CHECKING:
    from hpcscale.cluster import watch
    from hpcscale.run import Prepared, Reporter
    from hpcscale.rundir import RunDir

POLL = 0.5  # seconds between progress updates
SAMPLE = 1.0  # seconds between timeline samples


def write_result(
    prep: Prepared, client: Any, reporter: Reporter, watcher: watch.JobWatcher | None,
    rundir: RunDir,
) -> tuple[output.PendingWrite, float]:
    """Compute every block not yet written, record each, then mark the store complete.

    Returns the write and the seconds until the store was complete (dask's report,
    when rendered, comes after).
    """
    t0 = time.monotonic()
    write = output.write_zarr(
        prep.result, path=prep.spec.output.path, name=output_name(prep), dims=prep.info.dims,
        coords=_coords(prep), attrs=prep.source.attrs, provenance=_provenance(prep),
        overwrite=prep.overwrite, zarr_format=prep.spec.output.zarr_format,
        shards=tuple(prep.spec.output.shards) if prep.spec.output.shards else None,
        job=prep.job, run=rundir.run_id, inputs=[prep.spec.input.path],
    )
    if write.resumed or write.partials_removed:
        reporter.info(f"resuming {write.path}: {write.resumed} of {write.total} blocks already "
                      f"written; {write.partials_removed} half-written file(s) removed")
    with _DaskReport(filename=str(rundir.path / DASK_REPORT)):  # type: ignore[no-untyped-call]
        indices = list(write.blocks)
        futures = client.compute(list(write.blocks.values())) if indices else []
        _follow(client, dict(zip(indices, futures, strict=True)), write, reporter, watcher,
                rundir, prep.plan.workload.bytes_out)
        write.finalize()  # the result is complete before dask renders its report
        seconds = time.monotonic() - t0
    return write, seconds


class _DaskReport(performance_report):
    """dask's performance report (task stream, profiles), written for computations of
    DASK_REPORT_AFTER seconds or more: rendering it takes a second or two, longer than
    many a short computation, whose own report.html says enough."""

    def __exit__(self, *exc: object) -> None:
        if time.time() - self.start >= DASK_REPORT_AFTER:
            super().__exit__(*exc)  # type: ignore[no-untyped-call]


def output_name(prep: Prepared) -> str:
    var = (prep.spec.input.var or "").rsplit("/", 1)[-1]  # a nested var names its leaf
    return prep.spec.output.name or var or "result"


def _provenance(prep: Prepared) -> dict[str, Any]:
    return {
        "steps": [s.to_table() for s in prep.spec.steps],
        "input": str(prep.spec.input.path),
        "input_var": prep.spec.input.var,
        "site": prep.profile.name,
        "hpcscale_version": __version__,
    }


def _coords(prep: Prepared) -> dict[str, Any]:
    """The input's coordinates, plus bin centres and bounds for a histogram's ``bin`` dim."""
    coords: dict[str, Any] = dict(prep.source.coords)
    last = prep.spec.steps[-1]
    if isinstance(last, Histogram) and BIN_DIM in prep.info.dims:
        edges = last.bin_edges()
        coords[BIN_DIM] = last.bin_centers()
        coords["bin_lower"] = (BIN_DIM, edges[:-1])
        coords["bin_upper"] = (BIN_DIM, edges[1:])
    return coords


def _follow(
    client: Any, futures: dict[tuple[int, ...], Any], write: output.PendingWrite,
    reporter: Reporter, watcher: watch.JobWatcher | None, rundir: RunDir, bytes_out: int,
) -> None:
    """Until every block is written: record finished blocks, report progress,
    poll the watcher, sample the timeline. A failed block ends the run."""
    pending = dict(futures)
    # the graph's size as submitted: a fast run may be done before the first round
    total = client.run_on_scheduler(_remaining_tasks) if pending else 0
    last_sample = 0.0
    while True:
        finished = [i for i, f in pending.items() if f.status == "finished"]
        write.written(finished)
        for i in finished:
            del pending[i]
        failed = next((f for f in pending.values() if f.status in ("error", "cancelled")), None)
        if failed is not None:
            raise _failure(failed, write.path, bytes_out)
        if watcher is not None:
            watcher.poll(len(client.scheduler_info(n_workers=-1)["workers"]))
        remaining = client.run_on_scheduler(_remaining_tasks) if pending else 0
        total = max(total, remaining)
        reporter.progress(total - remaining, total)
        now = time.monotonic()
        if now - last_sample >= SAMPLE or not pending:
            rundir.sample(client, phase="computing",
                          blocks=write.total - len(pending), total=write.total)
            last_sample = now
        if not pending:
            return
        # back at once when a block finishes, else after POLL for progress
        with contextlib.suppress(TimeoutError):
            wait(list(pending.values()), timeout=POLL,  # type: ignore[no-untyped-call]
                 return_when="FIRST_COMPLETED")


def _failure(future: Any, path: str, bytes_out: int) -> Exception:
    kept = (f"; the output {path} is left as an unfinished store: re-run the same command "
            "to resume it (the blocks already written are kept)")
    if future.status == "cancelled":
        return RunError("computation failed: a block's task was cancelled (its worker was "
                        f"lost?){kept}")
    err = future.exception()
    full = output.disk_full_error(path, err, bytes_out)
    if full is not None:
        return full
    if isinstance(err, InputError):  # names the input and the chunk or file that failed
        return RunError(f"{one_line(err)}{kept.replace('re-run', 'fix the input, then re-run')}")
    return RunError(f"computation failed: {type(err).__name__}: {one_line(err)}{kept}")


def _remaining_tasks(dask_scheduler: Any = None) -> int:
    states = ("released", "waiting", "queued", "processing", "no-worker")
    return sum(1 for ts in dask_scheduler.tasks.values() if ts.state in states)


def peak_memory(client: Any) -> dict[str, int]:
    """Each worker's peak resident memory in bytes (Linux ru_maxrss is KiB), by the
    worker's name as the timeline has it (its address where it has no name)."""
    found: dict[str, int] = client.run(_max_rss)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    names = {a: w.get("name") for a, w in workers.items()}
    return {n if isinstance(n := names.get(a), str) else a: v for a, v in found.items()}


def _max_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

