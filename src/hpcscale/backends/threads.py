"""The in-process backend: dask's threaded scheduler, for a local run with one worker.

With one worker on this machine, a LocalCluster adds a worker process, a
scheduler and their event loops to every task; dask's threaded scheduler
runs the same graph on the same threads with none of that (docs/performance.md:
at many chunks a one-worker LocalCluster took twice the threaded scheduler's time).
A run still needs what a distributed ``Client`` gives it (its blocks as futures,
``run`` on the workers, the workers' memory, the scheduler's task counts), so
:class:`ThreadsClient` offers that part of the Client's interface over the
threaded scheduler, and a run's code does not tell the two apart. It has no
dashboard and no memory limit of its own (the plan's sizing still applies).

Used only where a run asks for it (``sizing.plan(..., in_process=True)``: a
``submit``, never :func:`hpcscale.cluster`, whose caller wants a real Client).
"""

from __future__ import annotations

import concurrent.futures
import inspect
import os
import socket
import threading
import weakref
from collections.abc import Callable, Sequence
from multiprocessing.pool import ThreadPool
from types import SimpleNamespace
from typing import Any

import dask

ADDRESS = "threads://local"


_CLIENTS: weakref.WeakSet[ThreadsClient] = weakref.WeakSet()


def tasks_running() -> bool:
    """Whether a task of this process's threads runs is still running (after a run was
    interrupted: its thread cannot be stopped, and exiting would wait for its I/O)."""
    return any(c._executing > 0 for c in list(_CLIENTS))


class Cancelled(Exception):
    """The run ended (Ctrl-C, an error) while blocks were still to compute."""


class BlockFuture(concurrent.futures.Future[None]):
    """One block's outcome: a standard future with the ``status`` of distributed's
    (pending, finished, error, cancelled), which the compute loop reads."""

    @property
    def status(self) -> str:
        if self.cancelled():
            return "cancelled"
        if not self.done():
            return "pending"
        return "error" if self.exception() is not None else "finished"


class ThreadsClient:
    """dask's threaded scheduler with ``threads`` threads, behind the part of
    ``distributed.Client`` a run uses. ``compute`` starts the graph in a thread of its
    own and returns a :class:`BlockFuture` per collection; ``close`` stops it: no task
    starts after it, those running are left to finish (a thread cannot be interrupted),
    and the process does not wait for them to exit."""

    dashboard_link = ""

    def __init__(self, threads: int, memory_limit: int = 0) -> None:
        self.threads = max(1, threads)
        self.memory_limit = memory_limit
        self._stop = threading.Event()
        self._runs: list[threading.Thread] = []
        self._total = 0
        self._finished = 0
        self._executing = 0
        self._count = threading.Lock()
        _CLIENTS.add(self)

    # -- the graph --

    def compute(self, collections: Sequence[Any]) -> list[BlockFuture]:
        """Compute ``collections`` (dask collections, e.g. delayed block writes) on the
        threaded scheduler; a future per collection, settled as its key finishes.
        Returns once the graph is built, as ``Client.compute`` does."""
        futures = [BlockFuture() for _ in collections]
        by_key = {c.key: f for c, f in zip(collections, futures, strict=True)}
        started = threading.Event()

        def start_state(dsk: Any, state: Any) -> None:
            with self._count:
                self._total += len(dsk)
            started.set()

        def pretask(key: Any, dsk: Any, state: Any) -> None:
            if self._stop.is_set():
                raise Cancelled("the run ended")
            with self._count:
                self._executing += 1

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            with self._count:
                self._executing -= 1
                self._finished += 1
            future = by_key.get(key)
            if future is not None:
                future.set_result(None)

        # Every future is settled in this run's own thread (dask calls the callbacks in
        # its scheduling loop), so none is settled twice.
        # multiprocessing's thread pool: its threads are daemons, so an interrupted run's
        # process exits while a task is still blocked (a hung read), as closing a
        # LocalCluster kills its worker; dask's own pool would be waited for at exit.
        pool = ThreadPool(self.threads)

        def run() -> None:
            try:
                dask.compute(  # type: ignore[attr-defined,no-untyped-call]
                    *collections, scheduler="threads", pool=pool,
                    callbacks=[(None, start_state, pretask, posttask, None)])
            except BaseException as err:  # every block not yet finished shares the error
                status = "cancelled" if isinstance(err, Cancelled) else "error"
                if status == "error":
                    with self._count:  # the failed task is over (no posttask for it)
                        self._executing = max(0, self._executing - 1)
                for f in futures:
                    if f.done():
                        continue
                    if status == "cancelled":
                        f.cancel()
                    else:
                        f.set_exception(err)
            finally:
                pool.close()  # no join: a task still running must not hold the run up
                started.set()
                for f in futures:  # finished without a posttask of its own key
                    if not f.done():
                        f.set_result(None)

        if collections:
            thread = threading.Thread(target=run, name="hpcscale-threads", daemon=True)
            self._runs.append(thread)
            thread.start()
            started.wait()
        return futures

    def run_on_scheduler(self, fn: Callable[..., Any]) -> Any:
        """``fn(dask_scheduler=...)`` on a view with one task group: the tasks not yet
        finished (what :func:`hpcscale.run.callbacks.remaining_tasks` counts)."""
        with self._count:
            left = self._total - self._finished
        group = SimpleNamespace(states={"waiting": left})
        return fn(dask_scheduler=SimpleNamespace(task_groups={"all": group}))

    # -- the one worker: this process --

    def run(self, fn: Callable[..., Any], *args: Any, workers: Sequence[str] | None = None,
            on_error: str = "raise", **kwargs: Any) -> dict[str, Any]:
        """``fn`` here, as ``Client.run`` on the one worker (``dask_worker`` given when
        ``fn`` takes it)."""
        if workers is not None and ADDRESS not in workers:
            return {}
        if "dask_worker" in inspect.signature(fn).parameters:
            kwargs["dask_worker"] = SimpleNamespace(state=SimpleNamespace(nthreads=self.threads))
        try:
            return {ADDRESS: fn(*args, **kwargs)}
        except Exception as err:
            if on_error == "ignore":
                return {}
            if on_error == "return":
                return {ADDRESS: err}
            raise

    def scheduler_info(self, n_workers: int = -1) -> dict[str, Any]:
        import psutil

        with self._count:
            executing = self._executing
        worker = {
            "name": "local", "host": socket.gethostname(), "nthreads": self.threads,
            "memory_limit": self.memory_limit,
            "metrics": {"memory": psutil.Process(os.getpid()).memory_info().rss,
                        "task_counts": {"executing": executing}},
        }
        return {"workers": {ADDRESS: worker}}

    def close(self, timeout: float = 1.0) -> None:
        """Stop handing out tasks; wait a little for the graph's thread to end."""
        self._stop.set()
        for thread in self._runs:
            thread.join(timeout)

    def __enter__(self) -> ThreadsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadsCluster:
    """The cluster of a threads run: nothing to start or cancel."""

    scheduler_address = ADDRESS

    def __init__(self) -> None:
        self.workers: dict[str, Any] = {}  # no jobs (backends.watch.cluster_jobs)

    def close(self) -> None:
        pass
