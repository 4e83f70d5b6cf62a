"""The in-process contestants: numpy/scipy, dask threaded, the read-only limit.

``python -m benchmarks.baselines KIND --case C --input IN --output OUT --result R.json``
runs one; ``python -m benchmarks.baselines serve`` is how the benchmark runs
them: it imports everything once, then forks a fresh child per request, so
each contestant has its own process (and peak memory) without paying for the
imports every time.

* ``numpy``: read the whole array, numpy/scipy on it in one process, write the
  result with zarr (the reference the other outputs are compared with);
* ``threaded``: the hand-written script's dask graph (``jobqueue_script.OPS``)
  on dask's threaded scheduler with ``--threads`` threads, written with to_zarr;
* ``read-only``: read and decompress every input chunk with ``--threads``
  threads (dask threaded), nothing else: the limit an I/O-bound run can reach.

Times are from just before opening the input to the output written; memory is
the process's peak resident size and its size just before that (after imports).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
import traceback
from typing import Any

import numpy as np


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _max_rss() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def run_numpy(case: str, inp: str, out: str) -> dict[str, Any]:
    import zarr

    from benchmarks.cases import CASES

    reference = CASES[case].reference
    base = _rss()
    t0 = time.time()
    x = zarr.open_array(inp, mode="r")[...]
    t1 = time.time()
    result = np.asarray(reference(x))
    t2 = time.time()
    arr = zarr.create_array(store=out, shape=result.shape, dtype=result.dtype)
    arr[...] = result
    t3 = time.time()
    return {"seconds": t3 - t0, "phases": {"read": t1 - t0, "compute": t2 - t1, "write": t3 - t2},
            "base_memory": base}


def run_threaded(case: str, inp: str, out: str, threads: int) -> dict[str, Any]:
    import dask
    import dask.array as da

    from benchmarks.jobqueue_script import OPS

    base = _rss()
    t0 = time.time()
    with dask.config.set(scheduler="threads", num_workers=threads):
        OPS[case](da.from_zarr(inp)).to_zarr(out)
    return {"seconds": time.time() - t0, "base_memory": base}


def _nbytes(block: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.full((1,) * block.ndim, block.nbytes, dtype=np.int64)


def run_read_only(inp: str, threads: int) -> dict[str, Any]:
    import dask
    import dask.array as da

    # One chunk first: the limit leaves out dask's and zarr's first-call set-up.
    first = da.from_zarr(inp)
    first.blocks[(0,) * first.ndim].compute(scheduler="sync")
    base = _rss()
    t0 = time.time()
    x = da.from_zarr(inp)
    counts = x.map_blocks(_nbytes, chunks=tuple((1,) * n for n in x.numblocks), dtype=np.int64)
    with dask.config.set(scheduler="threads", num_workers=threads):
        total = int(counts.sum().compute())
    seconds = time.time() - t0
    if total != x.nbytes:
        raise RuntimeError(f"read {total} bytes, expected {x.nbytes}")
    return {"seconds": seconds, "bytes_read": total, "gbps": total / seconds / 1e9,
            "base_memory": base}


def run_one(kind: str, case: str, inp: str, out: str, threads: int) -> dict[str, Any]:
    """One contestant in this process: its result, with its memory."""
    if kind == "numpy":
        res = run_numpy(case, inp, out)
    elif kind == "threaded":
        res = run_threaded(case, inp, out, threads)
    elif kind == "read-only":
        res = run_read_only(inp, threads)
    else:
        raise ValueError(f"unknown baseline {kind!r}")
    res["peak_memory"] = {"process": _max_rss()}
    res["base_memory"] = {"process": res["base_memory"]}
    return res


def _preload() -> None:
    # Imports are not what these contestants measure: done once, before any clock.
    # Nothing here may start a thread (zarr's event loop starts on first use), so
    # that forking afterwards is safe.
    import dask.array  # noqa: F401
    import dask_image.ndfilters  # noqa: F401
    import psutil  # noqa: F401
    import scipy.ndimage  # noqa: F401
    import zarr  # noqa: F401

    import benchmarks.cases  # noqa: F401


def serve() -> None:
    """Read one JSON request a line on stdin, run it in a forked child, answer one line.

    Request: kind, case, input, output, result, stderr, threads, timeout. Answer:
    {"code": exit code (-9 on timeout), "wall_s": fork to exit}. The child starts
    with every import done and a fresh peak-memory count of its own.
    """
    _preload()
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        t0 = time.time()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                fd = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 2)
                res = run_one(req["kind"], req["case"], req["input"], req["output"],
                              req["threads"])
                with open(req["result"], "w", encoding="utf-8") as f:
                    json.dump(res, f, indent=2)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        code = _wait(pid, t0 + float(req["timeout"]))
        print(json.dumps({"code": code, "wall_s": time.time() - t0}), flush=True)


def _wait(pid: int, deadline: float) -> int:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -9
        time.sleep(0.01)


def main() -> None:
    if sys.argv[1:] == ["serve"]:
        serve()
        return
    parser = argparse.ArgumentParser(description="one in-process benchmark contestant")
    parser.add_argument("kind", choices=["numpy", "threaded", "read-only"])
    parser.add_argument("--case", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    _preload()
    res = run_one(args.kind, args.case, args.input, args.output, args.threads)
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
