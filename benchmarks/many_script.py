"""The many-chunk case's plain contestants: what a user writes by hand.

``threaded``: ``da.from_zarr(...).mean(axis=0).to_zarr(...)`` on dask's threaded
scheduler with 2 threads. ``distributed``: the same graph on
``LocalCluster(n_workers=2, threads_per_worker=1)``. ``graph``: no computation;
the size of hpcscale's graph and the plain one (tasks, seconds to build and to
submit, the driver's memory, which holds a LocalCluster's scheduler).

Writes one JSON result: ``compute_s`` from opening the input to the output
written (the cluster already up), the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any


def _peak() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def plain(kind: str, inp: str, out: str) -> dict[str, Any]:
    import dask
    import dask.array as da

    client = None
    if kind == "distributed":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1,  # type: ignore[no-untyped-call]
                               dashboard_address=":0")
        client = Client(cluster)  # type: ignore[no-untyped-call]
        client.wait_for_workers(2)  # type: ignore[no-untyped-call]
    t0 = time.time()
    result = da.from_zarr(inp).mean(axis=0)  # type: ignore[no-untyped-call]
    if client is None:
        with dask.config.set(scheduler="threads", num_workers=2):
            result.to_zarr(out)
    else:
        result.to_zarr(out)
    seconds = time.time() - t0
    if client is not None:
        client.close()  # type: ignore[no-untyped-call]
    return {"compute_s": seconds, "driver_peak": _peak()}


def _tasks(collections: list[Any]) -> int:
    """Tasks in the optimized graph, as ``compute`` would submit it."""
    from dask.base import collections_to_expr

    expr = collections_to_expr(collections, optimize_graph=True)
    return len(expr.__dask_graph__())


def graph(inp: str, out: str, spec: str) -> dict[str, Any]:
    """hpcscale's graph and the plain one for the same input: sizes and costs."""
    import dask.array as da
    from distributed import Client, LocalCluster

    from hpcscale import run
    from hpcscale.config import jobspec
    from hpcscale.run.compute import output_name
    from hpcscale.io import output

    found: dict[str, Any] = {}
    base = _rss()
    t0 = time.time()
    prep = run.prepare(jobspec.load(Path(spec)), "local")
    write = output.write_zarr(prep.result, path=prep.spec.output.path, name=output_name(prep),
                              dims=prep.info.dims, provenance={})
    blocks = list(write.blocks.values())
    found["hpcscale_build_s"] = time.time() - t0
    t0 = time.time()
    # the blocks' writes share one optimized graph (to_delayed): its size is the task count
    found["hpcscale_tasks"] = len(blocks[0].__dask_graph__())
    found["hpcscale_blocks"] = len(blocks)
    found["count_s"] = time.time() - t0
    t0 = time.time()
    plain_graph = da.from_zarr(inp).mean(axis=0).to_zarr(  # type: ignore[no-untyped-call]
        out + "-plain", compute=False)
    found["plain_build_s"] = time.time() - t0
    found["plain_tasks"] = _tasks([plain_graph])
    found["driver_graph_bytes"] = _rss() - base
    with LocalCluster(n_workers=1, threads_per_worker=1,  # type: ignore[no-untyped-call]
                      dashboard_address=":0") as cluster, \
            Client(cluster) as client:  # type: ignore[no-untyped-call]
        before = _rss()
        t0 = time.time()
        futures = client.compute(blocks)  # type: ignore[no-untyped-call]
        n = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
        found["submit_s"] = time.time() - t0
        found["scheduler_tasks"] = n
        # the LocalCluster's scheduler runs in this process: the growth is its memory
        # and the client's futures
        found["scheduler_bytes"] = _rss() - before
        client.cancel(futures)  # type: ignore[no-untyped-call]
    found["driver_peak"] = _peak()
    return found


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--kind", choices=("threaded", "distributed", "graph"), required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--spec")
    p.add_argument("--result", required=True)
    a = p.parse_args()
    res = graph(a.input, a.output, a.spec) if a.kind == "graph" else \
        plain(a.kind, a.input, a.output)
    Path(a.result).write_text(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
