"""The throughput model: what this site's finished runs (or a calibration) measured.

A past run is an :class:`Observation`: the bytes its steps read, in how many
tasks, on how many threads, in how many seconds of computation. From the runs
that did the same work on the same site, :func:`fit_throughput` gives the
throughput of one thread (bytes per second) with its spread; :func:`fit_startup`
gives the site's time from a run's start to its first worker. Pure functions
over data: the run history is read by :mod:`hpcscale.run.prediction`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# The newest matching runs count; older ones (other hardware, other versions) fade out.
MAX_RUNS = 20
# The least spread shown: one or two runs cannot measure their own scatter, and a
# shared cluster's runs of the same work differ by this much and more.
MIN_SPREAD = 1.25
# A run's chunks are "of the same size" as the planned ones within this factor.
CHUNK_FACTOR = 4.0


@dataclass(frozen=True)
class Signature:
    """What the work is, as the model matches runs: the steps with their parameters,
    the kinds of steps alone, and the input's format and dtype."""

    steps: str  # the steps' tables, as JSON
    kinds: str  # e.g. "filter:median+reduce:mean"
    input: str = ""  # e.g. "zarr float32"


@dataclass(frozen=True)
class Observation:
    """One finished run (or a calibration) as the model sees it."""

    site: str
    signature: Signature
    chunk_bytes: int  # the largest task's block, halo included
    bytes_in: int  # what its steps read, uncompressed
    tasks: int  # tasks of the widest stage
    threads: int  # worker threads that computed
    compute_s: float
    first_worker_s: float | None = None
    origin: str = ""  # run id, or "calibration"

    @property
    def rate(self) -> float:
        """Bytes per second one thread computed: ``tasks`` in rounds of ``threads``."""
        rounds = math.ceil(self.tasks / max(self.threads, 1))
        return self.bytes_in / max(self.tasks, 1) * rounds / self.compute_s


@dataclass(frozen=True)
class Throughput:
    """Bytes per second per thread, the typical figure and its range, and where it came from."""

    rate: float
    low: float
    high: float
    runs: int
    source: str  # e.g. "history of 3 runs on site testbed (same steps and input)"


@dataclass(frozen=True)
class Startup:
    """Seconds from a run's start to its first worker on this site (queue wait included)."""

    seconds: float
    low: float
    high: float
    runs: int


_Match = Callable[[Observation], bool]


def tiers(signature: Signature, chunk_bytes: int) -> list[tuple[str, _Match]]:
    """How closely a past run must match, most specific first, each with its words."""

    def same_size(o: Observation) -> bool:
        small, large = sorted((max(o.chunk_bytes, 1), max(chunk_bytes, 1)))
        return large <= small * CHUNK_FACTOR

    return [
        ("same steps, input and chunk size",
         lambda o: o.signature == signature and same_size(o)),
        ("same steps and input", lambda o: o.signature == signature),
        ("same steps", lambda o: o.signature.steps == signature.steps),
        ("same kinds of steps, other parameters",
         lambda o: o.signature.kinds == signature.kinds),
    ]


def fit_throughput(
    history: Sequence[Observation], site: str, signature: Signature, chunk_bytes: int,
    *, calibration: Observation | None = None,
) -> Throughput | None:
    """The throughput for ``signature`` on ``site``: from the most specific tier of
    matching finished runs (the newest :data:`MAX_RUNS` of it, oldest first in
    ``history``); with none of the same steps, a calibration of them; else runs of
    the same kinds of steps; else None. The rate is the geometric mean, the range
    the slowest and fastest run, widened to at least :data:`MIN_SPREAD` either way."""
    mine = [o for o in history if o.site == site and o.compute_s > 0 and o.bytes_in > 0]
    found: list[Observation] = []
    words = ""
    for i, (what, match) in enumerate(tiers(signature, chunk_bytes)):
        if i == 3 and calibration is not None:
            break  # a calibration of these very steps beats runs of other parameters
        found = [o for o in mine if match(o)][-MAX_RUNS:]
        if found:
            words = what
            break
    if found:
        source = (f"history of {_runs(len(found))} on site {site} ({words})")
    elif calibration is not None and calibration.compute_s > 0:
        found = [calibration]
        source = f"calibration on site {site} ({calibration.origin})"
    else:
        return None
    rates = [o.rate for o in found]
    typical = math.exp(statistics.fmean(math.log(r) for r in rates))
    low = min(*rates, typical / MIN_SPREAD)
    high = max(*rates, typical * MIN_SPREAD)
    return Throughput(typical, low, high, len(found), source)


def fit_startup(history: Sequence[Observation], site: str) -> Startup | None:
    """The site's time to a first worker: the median of its newest runs, with the range."""
    seen = [o.first_worker_s for o in history
            if o.site == site and o.first_worker_s is not None][-MAX_RUNS:]
    if not seen:
        return None
    return Startup(statistics.median(seen), min(seen), max(seen), len(seen))


def _runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs"
