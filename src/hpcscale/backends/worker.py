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


def check_imports(client: object, modules: list[str], where: str) -> None:
    """Import each of ``modules`` on one connected worker, before any work is handed
    out; a module that does not import there is a one-line ``RunError`` naming it,
    the ImportError and the worker's Python (a login node's environment is often not
    the compute nodes')."""
    from hpcscale.errors import RunError

    wanted = [m for m in dict.fromkeys(modules) if m]
    if not wanted:
        return
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])  # type: ignore[attr-defined]
    if not workers:
        return
    said = client.run(_imports, wanted, workers=workers[:1])  # type: ignore[attr-defined]
    for address, problems in said.items():
        for module, why in problems:
            raise RunError(f"{where}: module {module!r} does not import on the workers "
                           f"(worker {address}): {why}; nothing was computed")


def _imports(modules: list[str]) -> list[tuple[str, str]]:
    from hpcscale.config.functions import import_on_worker

    return [(m, why) for m in modules if (why := import_on_worker(m)) is not None]
