"""Compute a prepared graph on a running cluster and write it to Zarr, block by block.

Each output block is one future. As blocks finish, the driver hands them to
its observers (:mod:`hpcscale.run.callbacks`): the store's manifest records them,
so a run killed at any moment resumes from what was written
(:mod:`hpcscale.io.manifest`); progress is reported, the job watcher replaces
lost and retiring jobs, and the cluster is sampled into the run's timeline.
"""

from __future__ import annotations

import contextlib
import queue
import resource
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from distributed import performance_report

from hpcscale._meta import __version__
from hpcscale.backends.threads import ThreadsClient
from hpcscale.errors import InputError, RunError, UserFunctionError
from hpcscale.io import output
from hpcscale.io._source import one_line
from hpcscale.ops import BIN_DIM, Histogram
from hpcscale.run import callbacks as callbacks_
from hpcscale.run.callbacks import Callback, Index
from hpcscale.rundir import DASK_REPORT, DASK_REPORT_AFTER

if TYPE_CHECKING:
    from hpcscale.backends import watch
    from hpcscale.run.types import Prepared, Reporter
    from hpcscale.rundir import RunDir

POLL = 0.5  # seconds the loop sleeps when no block finishes: the callbacks' resolution
FAILED = ("error", "cancelled")


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
        functions=prep.spec.functions,
    )
    if write.resumed or write.partials_removed:
        reporter.info(f"resuming {write.path}: {write.resumed} of {write.total} blocks already "
                      f"written; {write.partials_removed} half-written file(s) removed")
    in_process = isinstance(client, ThreadsClient)  # no scheduler to report on
    report = (contextlib.nullcontext() if in_process
              else _DaskReport(filename=str(rundir.path / DASK_REPORT)))  # type: ignore[no-untyped-call]
    with report:
        indices = list(write.blocks)
        futures = client.compute(list(write.blocks.values())) if indices else []
        follow(client, dict(zip(indices, futures, strict=True)),
               observers(client, write, reporter, watcher, rundir),
               write.path, prep.plan.workload.bytes_out)
        write.finalize()  # the result is complete before dask renders its report
        seconds = time.monotonic() - t0
    return write, seconds


def observers(client: Any, write: output.PendingWrite, reporter: Reporter,
              watcher: watch.JobWatcher | None, rundir: RunDir) -> list[Callback]:
    """A run's observers of its compute loop: the manifest first (a block is on record
    before anything reports it), then the watcher, progress and the timeline."""
    found: list[Callback] = [callbacks_.Manifest(write)]
    if watcher is not None:
        found.append(callbacks_.Watcher(client, watcher))
    found += [callbacks_.Progress(client, reporter), callbacks_.Timeline(client, rundir, write)]
    return found


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
        "steps": [s.record() for s in prep.spec.steps],
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


def follow(client: Any, futures: dict[Index, Any], callbacks: Sequence[Callback],
           path: str, bytes_out: int) -> None:
    """Wait until every block's future has finished, handing each batch of finished
    blocks to ``callbacks`` (see :mod:`hpcscale.run.callbacks`). A failed block ends the run.

    The driver keeps its own count: each future tells a queue when it is done, so a
    round costs the blocks it finished plus what the callbacks do at their own rates,
    whatever the size of the graph.
    """
    done: queue.SimpleQueue[Index] = queue.SimpleQueue()
    for index, future in futures.items():
        future.add_done_callback(lambda _f, i=index: done.put(i))
    for cb in callbacks:
        cb.on_compute_start(len(futures))
    left = len(futures)
    complete = False
    try:
        while left:
            # back at once when a block finishes, else after POLL for the callbacks
            batch = []
            with contextlib.suppress(queue.Empty):
                batch.append(done.get(timeout=POLL))
                while True:
                    batch.append(done.get_nowait())
            # a future's callback runs once it is finished, erred or cancelled; a
            # finished block stays written even if its (empty) result is lost later
            failed = next((futures[i] for i in batch if futures[i].status in FAILED), None)
            finished = [i for i in batch if futures[i].status not in FAILED]
            left -= len(finished)
            if finished:
                for cb in callbacks:
                    cb.on_blocks_done(finished)
            if failed is not None:
                raise _failure(failed, path, bytes_out)
            now = callbacks_.clock()
            for cb in callbacks:
                cb.on_round(now)
        complete = True
    finally:
        for cb in callbacks:
            cb.on_compute_end(complete)


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
    if isinstance(err, UserFunctionError):  # names the step, the function and the block
        return RunError(f"{one_line(err)}; the output {path} is left unfinished: fix the "
                        "function or the step, then re-run with --overwrite")
    if isinstance(err, InputError):  # names the input and the chunk or file that failed
        return RunError(f"{one_line(err)}{kept.replace('re-run', 'fix the input, then re-run')}")
    return RunError(f"computation failed: {type(err).__name__}: {one_line(err)}{kept}")


def peak_memory(client: Any) -> dict[str, int]:
    """Each worker's peak resident memory in bytes (Linux ru_maxrss is KiB), by the
    worker's name as the timeline has it (its address where it has no name)."""
    found: dict[str, int] = client.run(_max_rss)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    names = {a: w.get("name") for a, w in workers.items()}
    return {n if isinstance(n := names.get(a), str) else a: v for a, v in found.items()}


def _max_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024

