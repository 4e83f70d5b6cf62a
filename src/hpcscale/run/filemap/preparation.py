"""Before anything is submitted or written: the files, the function, the output, the plan.

:func:`prepare` does everything that can fail on bad input (a glob matching
nothing, a function that does not load or cannot be called as ``f(path,
out_dir, **kwargs)``, an output that is an input or someone else's folder, a
resume with a changed function) and writes nothing.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcscale import sizing, units
from hpcscale.config import functions, profiles
from hpcscale.config.jobspec import COMMAND_LINE, MapSpec
from hpcscale.errors import InputError, OutputError, ProfileError
from hpcscale.io.output import check_not_input
from hpcscale.run.filemap.index import MapFile, Results, assign_dirs
from hpcscale.run.filemap.task import OK
from hpcscale.run.preparation import choose_site, live_limits

SIGNATURE = "f(path, out_dir, **kwargs)"


@dataclass
class MapPrepared:
    """A map run, validated and planned: what :func:`hpcscale.run.filemap.execute` runs."""

    spec: MapSpec
    profile: profiles.SiteProfile
    plan: sizing.Plan
    fn: functions.UserFunction
    files: tuple[MapFile, ...]  # every file the glob matches, sorted
    todo: tuple[MapFile, ...]  # those to process: not ok in an earlier run (all: overwrite)
    results: Results
    overwrite: bool = False
    trusted: bool = False
    profile_files: tuple[Path, ...] = ()

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.spec.map.kwargs)

    @property
    def engine(self) -> str:
        return self.spec.map.engine

    @property
    def max_failures(self) -> int | None:
        return self.spec.map.max_failures

    @property
    def resumed(self) -> int:
        """Files an earlier run finished: not processed again."""
        return len(self.files) - len(self.todo)

    def lines(self) -> list[str]:
        """The plan as a person reads it."""
        p = self.plan
        largest = max((f.size for f in self.files), default=0)
        out = [
            f"site            {p.site} ({p.kind})",
            f"files           {len(self.files)} matched by {self.spec.map.files!r} "
            f"({units.format_bytes(sum(f.size for f in self.files))}, largest "
            f"{units.format_bytes(largest)})",
            f"to process      {len(self.todo)}"
            + (f" ({self.resumed} already ok in {self.results.shown})" if self.resumed else ""),
            f"function        {self.fn.spec}"
            + (f" (sha256 {self.fn.digest[:12]})" if self.fn.digest else ""),
            f"output          {self.results.shown} (a folder per file, index.zarr, index.csv)",
            f"engine          {self.engine}",
        ]
        if p.kind == "slurm" and self.engine == "array":
            out.append(f"array           {array_tasks(len(self.todo), p)} task(s), at most "
                       f"{p.jobs} at once, each {p.threads_per_worker * p.workers_per_job} "
                       f"core(s), {units.format_bytes(p.worker_memory * p.workers_per_job)}")
        else:
            out.append(f"jobs            {p.jobs} x {p.workers_per_job} worker(s) x "
                       f"{p.threads_per_worker} thread(s), "
                       f"{units.format_bytes(p.worker_memory)} per worker")
        if p.walltime:
            out.append(f"walltime        {units.format_walltime(p.walltime)}")
        out += [f"decision        {d}" for d in p.decisions]
        return out


# An array task starts a Python process (seconds) and then processes its files one
# after the other: a few tasks per array slot balance the load without many starts.
TASKS_PER_SLOT = 2


def array_tasks(files: int, plan: sizing.Plan) -> int:
    """How many tasks a job array of ``files`` files has: a few per slot the plan
    allows at once (its job count), never more than files."""
    return max(1, min(files, plan.jobs * TASKS_PER_SLOT))


def prepare(
    spec: MapSpec, site: str | None = None, jobs: int | str | None = None, *,
    overwrite: bool | None = None, trust: bool = False,
) -> MapPrepared:
    """Validate everything about a map run and plan it; submits and writes nothing."""
    resolved = profiles.load(choose_site(site or spec.run.site), trust=trust)
    m = spec.map
    if m.engine == "array" and not isinstance(resolved.profile, profiles.SlurmProfile):
        raise ProfileError(f"engine array: site {resolved.profile.name} is a local profile; "
                           "a job array needs a SLURM site (or use the dask engine)")
    what = "FILES" if spec.source == COMMAND_LINE else "[map] files"
    fn = functions.load(m.function, where=spec.where, base=spec.base)
    found = _glob(m.files, what)
    out_label = "OUTPUT" if spec.source == COMMAND_LINE else "[map] output"
    results = Results(Path(os.path.abspath(os.path.expanduser(m.output))), m.output)
    replace = m.overwrite if overwrite is None else overwrite
    rows = _check_output(results, m.files, out_label, fn, m.kwargs, replace)
    functions.check_call(fn, spec.where, (Path(found[0][0]), results.path / "x"), m.kwargs,
                         SIGNATURE)
    known = {k: str(r["dir"]) for k, r in rows.items() if isinstance(r.get("dir"), str)}
    files = assign_dirs(found, known)
    todo = [f for f in files if replace or rows.get(f.key, {}).get("status") != OK]
    workload = _workload(todo or files)
    requested = jobs if jobs is not None else spec.run.jobs
    plan = sizing.plan(resolved.profile, workload, requested, live_limits(resolved.profile),
                       walltime=spec.run.walltime_seconds)
    plan = dataclasses.replace(plan, decisions=plan.decisions + _memory_note(files, plan))
    return MapPrepared(spec, resolved.profile, plan, fn, tuple(files), tuple(todo), results,
                       replace, trust, resolved.files)


def _glob(pattern: str, what: str) -> list[tuple[str, str, int]]:
    """(absolute path, path as matched, size) of each match, sorted; one line if none."""
    matched = sorted(set(glob.glob(os.path.expanduser(pattern), recursive=True)))
    if not matched:
        raise InputError(f"{what} {pattern!r}: matches no file (relative to {os.getcwd()})")
    found = []
    for path in matched:
        try:
            size = os.stat(path).st_size if os.path.isfile(path) else 0
        except OSError:
            size = 0
        found.append((os.path.abspath(path), path, size))
    return found


def _check_output(results: Results, pattern: str, label: str, fn: functions.UserFunction,
                  kwargs: dict[str, Any], overwrite: bool) -> dict[str, dict[str, Any]]:
    """Refuse an output that must not be written; the rows of an earlier run of the same
    function there (none with ``overwrite``)."""
    out = results.path
    check_not_input(results.shown, [pattern], OutputError, label)
    if "**" in pattern:
        base = Path(os.path.abspath(os.path.expanduser(pattern.split("**", 1)[0]))).resolve()
        if Path(os.path.realpath(out)).is_relative_to(base):
            raise OutputError(f"{label} {results.shown}: would be matched by the input "
                              f"{pattern}; inputs are read-only: choose a path outside it")
    if out.exists() and not out.is_dir():
        raise OutputError(f"{label} {results.shown}: exists and is not a folder; a map run "
                          "writes a folder (a folder per file, index.zarr, index.csv)")
    if not out.exists():
        if not out.parent.is_dir():
            raise OutputError(f"{label} {results.shown}: its folder {out.parent} does not exist")
        return {}
    if not results.is_map_output():
        if any(out.iterdir()):
            raise OutputError(f"{label} {results.shown}: exists and is not the output of "
                              "`hpcscale map`; choose a new or empty folder")
        return {}
    if overwrite:
        return {}
    record = results.read_record()
    before = record.get("function") or {}
    if before.get("function") != fn.spec or before.get("digest") != fn.digest:
        was = f"{before.get('function')} (sha256 {str(before.get('digest') or '')[:12]})"
        now = f"{fn.spec} (sha256 {fn.digest[:12]})"
        raise OutputError(f"{label} {results.shown}: its rows were made by {was}, the function "
                          f"is now {now}: it changed; pass --overwrite to process every file "
                          "again, or choose another folder")
    if _canonical(record.get("kwargs", {})) != _canonical(kwargs):
        raise OutputError(f"{label} {results.shown}: its rows were made with kwargs "
                          f"{_canonical(record.get('kwargs', {}))}, now {_canonical(kwargs)}; "
                          "pass --overwrite to process every file again, or choose another "
                          "folder")
    return results.read_rows()


def _canonical(kwargs: Any) -> str:
    return json.dumps(kwargs, sort_keys=True, default=str)


def _workload(files: list[MapFile]) -> sizing.Workload:
    """A task per file. What the function needs in memory is not known: the plan sizes
    jobs by the number of files, and says when a file is larger than a worker thread's
    memory (:func:`_memory_note`). User functions are Python: they may hold the GIL, so
    a local run gets worker processes."""
    return sizing.Workload(chunks=len(files), chunk_bytes=0,
                           bytes_in=sum(f.size for f in files), bytes_out=0,
                           output_chunks=len(files), holds_gil=True)


def _memory_note(files: list[MapFile], plan: sizing.Plan) -> tuple[str, ...]:
    largest = max((f.size for f in files), default=0)
    per_thread = plan.worker_memory // max(1, plan.threads_per_worker)
    if largest <= per_thread:
        return ()
    return (f"warning: the largest file ({units.format_bytes(largest)}) is larger than a "
            f"worker thread's memory ({units.format_bytes(per_thread)}); a function that "
            "reads it whole will run out of memory",)
