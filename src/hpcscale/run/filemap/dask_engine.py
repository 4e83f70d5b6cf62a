"""The dask engine: a task per file on the run's dask workers.

The cluster is every run's (:func:`hpcscale.run.execution.cluster_session`:
the profile's SLURMCluster or LocalCluster as the plan sizes it, the job
watcher, every job cancelled at the end); the user's module is imported on the
first worker before any file is handed out. Each file's row is appended to the
journal as its task finishes.
"""

from __future__ import annotations

import contextlib
import queue
import time
from typing import TYPE_CHECKING, Any

from hpcscale.io._source import one_line
from hpcscale.run import callbacks
from hpcscale.run.execution import cluster_session
from hpcscale.run.filemap import task
from hpcscale.run.filemap.index import MapFile

if TYPE_CHECKING:
    from hpcscale.run.filemap.preparation import MapPrepared
    from hpcscale.run.filemap.types import MapSummary
    from hpcscale.run.types import Reporter
    from hpcscale.rundir import RunDir

POLL = 0.5  # seconds the loop waits for a finished file before its other duties


def run(prep: MapPrepared, reporter: Reporter, rundir: RunDir, summary: MapSummary) -> None:
    """Process ``prep.todo`` on the run's cluster, a row in the journal per file."""
    imports = [(prep.spec.where, prep.fn.module)] if prep.fn.module else []
    with cluster_session(prep.profile, prep.plan, reporter, rundir, summary,
                         imports=imports) as session:
        client = session.client
        out = prep.results.path
        # the function once on every worker, not a copy inside each of the files' tasks
        func = client.scatter(task.pickled(prep.fn.func), broadcast=True, hash=False)
        n = len(prep.todo)
        submitted = client.map(
            task.run_one, [func] * n, [f.key for f in prep.todo],
            [str(out / f.dir) for f in prep.todo], [prep.kwargs] * n,
            source=prep.fn.path.name if prep.fn.path else "",
            key=[f"map_file-{rundir.run_id}-{i}" for i in range(n)], pure=False)
        futures = dict(enumerate(submitted))
        observers: list[callbacks.Callback] = []
        if session.watcher is not None:
            observers.append(callbacks.Watcher(client, session.watcher))
        left = _follow(prep, client, futures, observers, reporter, rundir, summary)
        summary.not_run = left
        session.outcome.failure = summary.problem()


def _follow(prep: MapPrepared, client: Any, futures: dict[int, Any],
            observers: list[callbacks.Callback], reporter: Reporter, rundir: RunDir,
            summary: MapSummary) -> int:
    """Record each file's row as its task finishes; stop early after ``max_failures``
    failures (the other tasks cancelled). Returns the files not processed."""
    done: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i, future in futures.items():
        future.add_done_callback(lambda _f, i=i: done.put(i))
    total, left, failures = len(futures), len(futures), 0
    sample = callbacks.Every(callbacks.SAMPLE)
    progress = callbacks.Every(callbacks.PROGRESS)
    reporter.progress(0, total)
    while left:
        batch: list[int] = []
        with contextlib.suppress(queue.Empty):
            batch.append(done.get(timeout=POLL))
            while True:
                batch.append(done.get_nowait())
        rows = _rows(client, [(prep.todo[i], futures.pop(i)) for i in batch])
        prep.results.append(rows)
        left -= len(rows)
        for row in rows:
            if row["status"] == task.OK:
                summary.ok += 1
            else:
                summary.failed += 1
                failures += 1
        limit = prep.max_failures
        if limit is not None and failures >= limit and left:
            client.cancel(list(futures.values()))
            summary.stopped = f"stopped after {failures} failure(s) (--max-failures {limit})"
            reporter.info(summary.stopped)
            break
        now = callbacks.clock()
        for cb in observers:
            cb.on_round(now)
        if progress.due(now) or not left:
            reporter.progress(total - left, total)
        if sample.due(now) or not left:
            rundir.sample(client, phase="computing", blocks=total - left, total=total)
    return left


def _rows(client: Any, finished: list[tuple[MapFile, Any]]) -> list[dict[str, Any]]:
    """The rows of finished tasks: their results in one gather; a task that itself
    failed (its worker died with it: ``KilledWorker``) is a failed row too."""
    good = [(f, fut) for f, fut in finished if fut.status == "finished"]
    results = client.gather([fut for _, fut in good]) if good else []
    rows = []
    for (f, _), row in zip(good, results, strict=True):
        rows.append({**row, "key": f.key, "file": f.file, "dir": f.dir})
    for f, fut in finished:
        if fut.status == "finished":
            continue
        if fut.status == "cancelled":
            error = "its task was cancelled (its worker was lost?)"
        else:
            exc = fut.exception()
            error = f"{type(exc).__name__}: {one_line(exc)}"
        rows.append({"status": task.FAILED, "seconds": float("nan"), "worker": "",
                     "error": error, "values": {}, "t": time.time(), "key": f.key, "file": f.file,
                     "dir": f.dir})
    return rows
