"""From ``[[steps]]`` tables to step objects, and from steps to one dask graph."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask.array as da

from hpcscale.errors import JobSpecError
from hpcscale.ops.base import ArrayInfo, fmt_value
from hpcscale.ops.filters import (
    FILTER_MODELS,
    FILTERS,
    EdgeFilter,
    GaussianFilter,
    LaplaceFilter,
    PercentileFilter,
    SizeFilter,
)
from hpcscale.ops.histogram import Histogram
from hpcscale.ops.map import MapStep
from hpcscale.ops.reduce import REDUCTIONS, Reduction

Step = (
    GaussianFilter
    | SizeFilter
    | PercentileFilter
    | EdgeFilter
    | LaplaceFilter
    | Reduction
    | Histogram
    | MapStep
)
STEP_KINDS = ("filter", "reduce", "histogram", "map")


def parse_step(table: dict[str, Any], index: int | None = None) -> Step:
    """Build a step from one ``[[steps]]`` table.

    The table's kind is the one of ``filter``, ``reduce``, ``histogram`` or ``map``
    it has (a ``map`` step's function is loaded and bound by the job spec, which knows
    where relative files lie: ``MapStep.bind``). ``index`` is the step number shown in
    messages (``step 3 (median): ...``); the job spec counts from 1. Raises a one-line
    ``JobSpecError``.
    """
    label = f"step {index}" if index is not None else "step"
    if not isinstance(table, dict):
        raise JobSpecError(f"{label} must be a table, got {fmt_value(table)}")
    kinds = [k for k in STEP_KINDS if k in table]
    if len(kinds) != 1:
        found = ", ".join(kinds) if kinds else "none"
        raise JobSpecError(
            f"{label} must have exactly one of the keys {', '.join(STEP_KINDS)} "
            f"(what the step does); found {found}"
        )
    kind = kinds[0]
    if kind == "map":
        return MapStep.parse(table, index)
    if kind == "histogram":
        return Histogram.parse(table, index)
    if kind == "reduce":
        if table["reduce"] not in REDUCTIONS:
            raise JobSpecError(
                f"{label}: unknown reduction {fmt_value(table['reduce'])}; "
                f"valid reductions: {', '.join(REDUCTIONS)}"
            )
        return Reduction.parse(table, index)
    name = table["filter"]
    if not isinstance(name, str) or name not in FILTER_MODELS:
        raise JobSpecError(
            f"{label}: unknown filter {fmt_value(name)}; valid filters: {', '.join(FILTERS)}"
        )
    return FILTER_MODELS[name].parse(table, index)


def parse_steps(tables: Sequence[dict[str, Any]]) -> list[Step]:
    """Parse the job spec's ``steps`` list; messages number the steps from 1."""
    return [parse_step(table, i) for i, table in enumerate(tables, start=1)]


def resolve_steps(info: ArrayInfo, steps: Sequence[Step]) -> list[ArrayInfo]:
    """Check every step against its input; the info after each step, in order.

    Raises the first step's ``JobSpecError``; nothing is computed.
    """
    infos = []
    for step in steps:
        info = step.resolve(info)
        infos.append(info)
    return infos


# Batch reads only where there are more tasks than this, and keep at least this many:
# below it, dask's per-task cost is small beside the work, and the tasks spread the
# work over the run's jobs.
BATCH_MIN_TASKS = 1024


def read_batch(info: ArrayInfo, steps: Sequence[Step], budget: int) -> dict[str, int] | None:
    """Chunks to read the input with so that each task reads several stored chunks,
    or None to keep the stored ones.

    dask's per-task cost (about a millisecond on a distributed worker) dominates
    when stored chunks are small: 16k chunks of 8 x 512 x 512 take longer to
    schedule than to read. Where the first step allows it (a reduction, along its
    reduced axes: the output's blocks stay the same), the read chunks are whole
    multiples of the stored ones, growing the reduced axes in order until a task
    holds ``budget`` bytes (counted at 8 bytes a value, as steps work in float64).
    Only regular chunk grids of more than ``BATCH_MIN_TASKS`` chunks are batched,
    and never to fewer tasks than that.
    """
    tasks = math.prod(len(cs) for cs in info.chunks) if info.shape else 0
    if not steps or tasks <= BATCH_MIN_TASKS:
        return None
    axes = steps[0].batch_axes(info)
    if not axes or any(len(set(cs[:-1])) > 1 or cs[-1] > cs[0] for cs in info.chunks):
        return None
    block = [cs[0] for cs in info.chunks]
    itemsize = max(info.dtype.itemsize, 8)
    size = math.prod(block) * itemsize
    grown: dict[str, int] = {}
    for a in axes:
        if size * 2 > budget or block[a] >= info.shape[a]:
            continue
        count = -(-info.shape[a] // block[a])  # chunks along a
        times = min(budget // size, count, tasks // BATCH_MIN_TASKS)
        if times < 2:
            continue
        length = min(block[a] * times, info.shape[a])
        tasks = tasks // count * -(-info.shape[a] // length)
        size = size // block[a] * length
        block[a] = length
        grown[info.dims[a]] = length
    return grown or None


def build_graph(
    arr: da.Array, info: ArrayInfo, steps: Sequence[Step]
) -> tuple[da.Array, ArrayInfo]:
    """One lazy graph for all steps and the info of its result.

    All steps are resolved before any graph is built, so a bad last step fails
    before anything runs. Intermediate results are never written: a filter
    followed by a reduction is one graph.
    """
    if tuple(arr.shape) != info.shape or arr.dtype != info.dtype or arr.chunks != info.chunks:
        raise ValueError(f"array {arr.shape} {arr.dtype} does not match {info}")
    infos = resolve_steps(info, steps)
    out, step_in = arr, info
    for step, step_out in zip(steps, infos, strict=True):
        out = step.apply(out, step_in)
        step_in = step_out
    return out, step_in
