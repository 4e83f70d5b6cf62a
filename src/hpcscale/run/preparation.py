"""Before anything is submitted: profile, input, steps, output path and plan.

:func:`prepare` does everything that can fail on bad input and submits nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Literal

from hpcscale import sizing, slurm, units
from hpcscale._meta import __version__
from hpcscale.config import profiles
from hpcscale.config.jobspec import JobSpec
from hpcscale.errors import SizingError, UsageError
from hpcscale.io import inputs, output
from hpcscale.ops import ArrayInfo, build_graph, read_batch, resolve_steps
from hpcscale.run import prediction
from hpcscale.run.types import Prepared


def choose_site(site: str | None, spec: JobSpec | None = None) -> str:
    """The site to use: the option, the spec's hint, $HPCSCALE_SITE, else local if no SLURM."""
    chosen = site or (spec.run.site if spec else None) or os.environ.get("HPCSCALE_SITE")
    if chosen:
        return chosen
    if slurm.available():
        known = ", ".join(sorted(profiles.discover()))
        raise UsageError(
            f"SLURM is available here: name a site with --site (known: {known}); "
            "use --site local to run on this machine"
        )
    return "local"


def prepare(
    spec: JobSpec, site: str | None = None, jobs: int | str | None = None, *,
    overwrite: bool | None = None, trust: bool = False,
) -> Prepared:
    """Validate everything about a run and plan it; submits and writes nothing."""
    resolved = profiles.load(choose_site(site, spec), trust=trust)
    source = inputs.open_input(spec.input.path, spec.input.var)
    info = ArrayInfo.of(source.data, source.dims)
    requested = jobs if jobs is not None else spec.run.jobs
    in_process = sizing.runs_in_process(resolved.profile, requested, _holds_gil(spec))
    budget = sizing.batch_budget(resolved.profile, in_process=in_process)
    batch = read_batch(info, spec.steps, budget) if source.kind == "zarr" else None
    batched: tuple[str, ...] = ()
    if batch:  # several stored chunks per task: see ops.read_batch
        stored = dict(zip(info.dims, (cs[0] for cs in info.chunks), strict=True))
        source = inputs.open_input(spec.input.path, spec.input.var, chunks=batch)
        info = ArrayInfo.of(source.data, source.dims)
        each = math.prod(-(-n // stored[d]) for d, n in batch.items())
        along = ", ".join(f"{d} ({stored[d]} -> {n})" for d, n in batch.items())
        batched = (f"each task reads {each} stored chunks along {along}: the stored "
                   "chunks are small, and dask's cost per task would dominate",)
    result, out_info = build_graph(source.data, info, spec.steps)
    replace = spec.output.overwrite if overwrite is None else overwrite
    job = fingerprint(spec, source)
    mode = output.check_output(spec.output.path, overwrite=replace, job=job,
                               inputs=[spec.input.path], functions=spec.functions)
    workload = workload_of(spec, info, out_info, source.kind)
    plan = _plan(resolved.profile, workload, requested, spec)
    notes = batched + _space_warning(spec.output.path, workload.bytes_out)
    if mode == "resume":
        notes += (f"resume: {spec.output.path} is an unfinished result of this same job; "
                  "the blocks it records as written are not computed again",)
    plan = dataclasses.replace(plan, decisions=plan.decisions + notes)
    return Prepared(spec, resolved.profile, source, result, out_info, plan, replace, trust,
                    resolved.files, job=job, resume=mode == "resume")


def _plan(profile: profiles.SiteProfile, workload: sizing.Workload, jobs: int | str,
          spec: JobSpec) -> sizing.Plan:
    """Plan with what the site has measured (:mod:`hpcscale.run.prediction`); where SLURM
    answers, plan again knowing its expected starts of the shapes the plan weighs."""
    limits = live_limits(profile)
    walltime: int | Literal["auto"] | None = (
        "auto" if spec.run.walltime_auto else spec.run.walltime_seconds)
    known = prediction.evidence(profile.name, workload)
    plan = sizing.plan(profile, workload, jobs, limits, walltime=walltime, evidence=known,
                       in_process=True)
    if limits is None or plan.forecast is None:
        return plan
    starts = prediction.expected_starts(profile, plan.forecast.shapes)
    if not starts:
        return plan
    return sizing.plan(profile, workload, jobs, limits, walltime=walltime,
                       evidence=dataclasses.replace(known, starts=starts), in_process=True)


def _holds_gil(spec: JobSpec) -> bool:
    """Whether a step's work holds the GIL (threads of one process do not run it in
    parallel): what lays out a local site, and with it the batch of a read."""
    return any(step.HOLDS_GIL for step in spec.steps)


def fingerprint(spec: JobSpec, source: inputs.InputArray) -> str:
    """What makes two runs write the same bytes: input, steps (with their functions'
    digests), output layout, version."""
    what = {
        "input": os.path.abspath(os.path.expanduser(str(spec.input.path))),
        "var": spec.input.var,
        "shape": list(source.shape),
        "dtype": str(source.data.dtype),
        "chunks": [list(c) for c in source.data.chunks],
        "steps": [s.record() for s in spec.steps],  # a user function's digest too
        "name": spec.output.name,
        "zarr_format": spec.output.zarr_format,
        "shards": spec.output.shards,
        "version": __version__,
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _space_warning(path: str, needed: int) -> tuple[str, ...]:
    """A plan line when the output's file system has less free space than the result."""
    parent = Path(os.path.expanduser(str(path))).absolute().parent
    try:
        stat = os.statvfs(parent)
    except OSError:
        return ()
    free = stat.f_bavail * stat.f_frsize
    if free >= needed:
        return ()
    return (f"warning: {units.format_bytes(free)} free on the output's file system ({parent}) "
            f"but the result is up to {units.format_bytes(needed)} uncompressed; it may not fit",)


def live_limits(profile: profiles.SiteProfile) -> slurm.Limits | None:
    """The live limits for a SLURM profile (one scontrol each, sacctmgr if any)."""
    if not isinstance(profile, profiles.SlurmProfile) or not slurm.available():
        return None
    found = slurm.limits(profile.slurm.partition)
    if found is None:
        raise SizingError(f"site {profile.name}: partition {profile.slurm.partition!r} does "
                          "not exist here (see `hpcscale site check`)")
    return found


def workload_of(spec: JobSpec, info: ArrayInfo, out: ArrayInfo,
              input_kind: str = "") -> sizing.Workload:
    """Measure the graph: the widest stage's task count and the largest block a
    task holds (its step's own blocks, after any rechunking, plus the halo)."""
    tasks = math.prod(len(c) for c in info.chunks)
    largest = 0
    step_in = info
    for step, step_out in zip(spec.steps, resolve_steps(info, spec.steps), strict=True):
        blocks = step.input_chunks(step_in)
        halo = step.halo(step_in)
        extent = [max(c) + 2 * h for c, h in zip(blocks, halo, strict=True)]
        itemsize = max(step_in.dtype.itemsize, 8)  # filters and means work in float64
        largest = max(largest, math.prod(extent) * itemsize)
        tasks = max(tasks, math.prod(len(c) for c in blocks))
        step_in = step_out
    return sizing.Workload(
        chunks=tasks,
        chunk_bytes=largest,
        bytes_in=math.prod(info.shape) * info.dtype.itemsize,
        bytes_out=math.prod(out.shape) * out.dtype.itemsize,
        output_chunks=math.prod(len(c) for c in out.chunks) if out.chunks else 1,
        holds_gil=_holds_gil(spec),
        **dataclasses.asdict(prediction.signature(spec.steps, input_kind, str(info.dtype))),
    )
