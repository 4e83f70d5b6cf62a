"""``hpcscale calibrate``: a first throughput figure before any run of a job has finished.

It computes the job's steps on a few of the input's first chunks, here, on one
thread, and stores the bytes per second in the user's state directory
(:func:`hpcscale.rundir.calibration_file`), where ``plan`` finds it for the
site until runs of the same steps on that site give a measured figure. It
reads the input only (and writes nothing else): the results are thrown away.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import dask
import dask.array as da

from hpcscale._meta import __version__
from hpcscale.config import profiles
from hpcscale.config.jobspec import JobSpec
from hpcscale.errors import JobSpecError, UsageError
from hpcscale.io import inputs
from hpcscale.ops import ArrayInfo, build_graph
from hpcscale.run import prediction
from hpcscale.run.preparation import choose_site, workload_of

CHUNKS = 3  # chunks timed, after one that warms up (imports, caches, the file system)


@dataclass(frozen=True)
class Calibration:
    """What a calibration measured and where it is stored."""

    site: str
    chunks: int
    bytes_in: int
    seconds: float
    host: str
    path: Path

    @property
    def rate(self) -> float:
        """Bytes per second on one thread."""
        return self.bytes_in / self.seconds


def calibrate(spec: JobSpec, site: str | None = None, *, chunks: int = CHUNKS,
              trust: bool = False) -> Calibration:
    """Time the job's steps on its first ``chunks`` input chunks on this machine (one
    thread) and store the figure for ``site``; returns what was measured."""
    if chunks < 1:
        raise UsageError(f"--chunks {chunks}: must be at least 1")
    name = profiles.load(choose_site(site, spec), trust=trust).profile.name
    source = inputs.open_input(spec.input.path, spec.input.var)
    info = ArrayInfo.of(source.data, source.dims)
    _, out_info = build_graph(source.data, info, spec.steps)  # the whole job's steps are valid
    work = workload_of(spec, info, out_info, source.kind)
    samples = _samples(source.data, chunks + 1)
    graphs = []
    for sample in samples:
        try:
            graphs.append(build_graph(sample, ArrayInfo.of(sample, source.dims), spec.steps)[0])
        except (JobSpecError, ValueError) as err:
            raise UsageError(f"calibrate: the steps of {spec.source} do not run on one chunk of "
                             f"the input ({err}); run a small job on the site instead") from err
    with dask.config.set(scheduler="synchronous"):
        graphs[0].compute()  # type: ignore[no-untyped-call]  # warm-up, not timed
        timed = samples[1:] if len(samples) > 1 else samples
        started = time.perf_counter()
        for graph in graphs[1:] if len(graphs) > 1 else graphs:
            graph.compute()  # type: ignore[no-untyped-call]
        seconds = max(time.perf_counter() - started, 1e-6)
    bytes_in = sum(int(s.nbytes) for s in timed)
    host = os.uname().nodename
    path = prediction.store_calibration({
        "site": name, "steps": work.steps, "kinds": work.kinds, "input": work.input,
        "chunk_bytes": work.chunk_bytes, "bytes_in": bytes_in, "tasks": len(timed),
        "compute_s": round(seconds, 4), "host": host, "when": round(time.time(), 1),
        "version": __version__,
    })
    return Calibration(name, len(timed), bytes_in, seconds, host, path)


def _samples(data: da.Array, count: int) -> list[da.Array]:
    """The first ``count`` chunks along the axis with the most chunks (the first chunk
    along the others), each as an array of its own."""
    axis = max(range(data.ndim), key=lambda a: (len(data.chunks[a]), -a))
    found = []
    start = 0
    for size in data.chunks[axis][:count]:
        index = tuple(slice(start, start + size) if a == axis else slice(0, data.chunks[a][0])
                      for a in range(data.ndim))
        found.append(data[index])
        start += size
    return found
