#!/usr/bin/env python
"""A hand-written dask-jobqueue script: what a scientist writes without hpcscale.

Start a SLURMCluster (1 core, 1 process, 1 GiB per job), scale to N jobs, wait
for the workers, open the Zarr input with dask, apply the operation (dask.array
for reductions, a per-plane histogram with map_blocks, dask-image for filters),
write the result with ``to_zarr`` (zarr's default codec) and close the cluster.
No TLS, no job watching, no resume: the plain recipe from the dask-jobqueue docs.

``OPS`` is shared with the benchmark's dask-threaded contestant, so both run
the same graph. The benchmark runs this file as a script (its functions are
then pickled by value, as a user's would be) and reads ``--result`` (JSON).
With ``--local`` the same script uses a LocalCluster instead of SLURM.
"""

from __future__ import annotations

import time

T0 = time.time()  # the script's own clock starts before its imports

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import dask.array as da  # noqa: E402
import numpy as np  # noqa: E402

BINS = 100
RANGE = (-4.0, 4.0)


def mean(x: da.Array) -> da.Array:
    return x.mean(axis=0)


def std(x: da.Array) -> da.Array:
    return x.std()


def _plane_histograms(block: np.ndarray) -> np.ndarray:
    counts = np.stack([np.histogram(plane, BINS, RANGE)[0] for plane in block])
    return counts[:, None, None, :]


def histogram(x: da.Array) -> da.Array:
    """One histogram per plane (over y and x): counts of each block's planes, summed."""
    chunks = (x.chunks[0], (1,) * x.numblocks[1], (1,) * x.numblocks[2], (BINS,))
    counts = x.map_blocks(_plane_histograms, new_axis=3, chunks=chunks, dtype=np.int64)
    return counts.sum(axis=(1, 2))


def gaussian(x: da.Array) -> da.Array:
    from dask_image.ndfilters import gaussian_filter

    return gaussian_filter(x, sigma=2)


def median(x: da.Array) -> da.Array:
    from dask_image.ndfilters import median_filter

    return median_filter(x, size=3)


def pipeline(x: da.Array) -> da.Array:
    from dask_image.ndfilters import gaussian_filter

    return gaussian_filter(x, sigma=(0, 2, 2)).max(axis=0)


OPS = {"mean": mean, "std": std, "histogram": histogram, "gaussian": gaussian,
       "median": median, "pipeline": pipeline}


def _loaded_rss() -> int:
    """The worker's memory with the libraries its tasks use loaded, before any data.

    (The benchmark's measure of an idle worker; the imports would otherwise
    happen in the first tasks, so the script's run time hardly changes.)
    """
    import dask_image.ndfilters  # noqa: F401
    import numcodecs  # noqa: F401
    import psutil
    import scipy.ndimage  # noqa: F401
    import zarr  # noqa: F401

    return int(psutil.Process().memory_info().rss)


def _max_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(OPS), required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--result", required=True, help="where to write the timings (JSON)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--logs", default=None, help="SLURM job log directory")
    parser.add_argument("--job-name", default="dask-worker")
    parser.add_argument("--local", action="store_true", help="LocalCluster instead of SLURM")
    args = parser.parse_args()

    from distributed import Client, LocalCluster

    cluster: Any
    if args.local:
        cluster = LocalCluster(n_workers=args.jobs, threads_per_worker=1,
                               dashboard_address=":0")
    else:
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(
            cores=1, processes=1, memory="1GiB", queue="debug", walltime="00:30:00",
            interface="eth0", scheduler_options={"interface": "hpcsbr0"},
            python=sys.executable, log_directory=args.logs, job_name=args.job_name,
        )
    times: dict[str, float] = {"start": T0}
    out: dict[str, Any] = {}
    client = None
    try:
        if not args.local:
            cluster.scale(jobs=args.jobs)
        times["cluster_started"] = time.time()
        client = Client(cluster)
        client.wait_for_workers(1)
        times["first_worker"] = time.time()
        client.wait_for_workers(args.jobs)
        times["all_workers"] = time.time()
        out["base_memory"] = client.run(_loaded_rss)
        times["loaded"] = time.time()

        x = da.from_zarr(args.input)
        OPS[args.case](x).to_zarr(args.output)
        times["written"] = time.time()

        out["peak_memory"] = client.run(_max_rss)
        out["jobs"] = sorted(str(j.job_id) for j in getattr(cluster, "workers", {}).values()
                             if getattr(j, "job_id", None))
    finally:
        if client is not None:
            client.close()
        cluster.close()
    times["closed"] = time.time()
    out["times"] = times
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
