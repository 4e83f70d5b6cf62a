"""What every hpcscale worker does when it joins a run, before its first task.

:func:`warm` runs on each worker as it connects (``client.run``), while the
run still waits for the others, instead of inside the first tasks
(measured: the first computation on fresh workers took about twice as long
as a repeat of it). It must not run while tasks do: importing the same
modules from two threads at once can hand one of them a half-initialised
module.
"""

from __future__ import annotations

import importlib

# Modules the tasks need: importing them on a shared file system can take seconds.
MODULES = ("numpy", "scipy.ndimage", "numcodecs", "zarr", "hpcscale.io.output", "hpcscale.ops")


def warm(dask_worker: object = None) -> None:
    """Import what the tasks use; size Zarr's I/O to the worker's threads."""
    for module in MODULES:
        importlib.import_module(module)
    import zarr

    # Zarr's default async concurrency (10 requests per array access) and its
    # thread pool (one per core of the node, not of the job) oversubscribe a
    # worker that has a core or two: each task reads or writes one chunk, and
    # the worker's threads are the parallelism.
    state = getattr(dask_worker, "state", None)
    threads = max(1, int(getattr(state, "nthreads", 1) or 1))
    zarr.config.set({"async.concurrency": threads, "threading.max_workers": threads})
