"""Reading a run directory for the report: leniently, whatever state the run left it in.

:func:`load` reads ``state.json``, ``summary.json``, ``plan.json`` (or an older
run's ``plan.txt``), ``jobspec.toml`` and ``timeline.jsonl`` into a
:class:`RunRecord`. Any of them may be missing or cut short (a failed or
cancelled run, a driver killed mid-line): what is missing or unreadable is
listed in the record, never raised.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from hpcscale import units
from hpcscale.rundir import RunDir, RunStatus

__all__ = ["Planned", "RunRecord", "Sample", "Worker", "find_run", "integer", "load",
           "memory_limit", "number", "peaks", "plan_from_json", "plan_from_text", "state_of"]


class Worker(NamedTuple):
    """A worker in one sample: memory and its limit in bytes (0: not known), host, address."""

    memory: int
    limit: int
    host: str
    address: str = ""  # not recorded by older runs


@dataclass(frozen=True)
class Sample:
    """One line of ``timeline.jsonl``: ``t`` in seconds since the run started."""

    t: float
    phase: str
    workers: dict[str, Worker]
    jobs: dict[str, str]
    blocks: int | None
    total: int | None


@dataclass(frozen=True)
class Planned:
    """What the plan said, as the report shows it; None or "": not known."""

    kind: str = ""  # "slurm" or "local"
    jobs: int | None = None
    workers: int | None = None  # in all
    threads: int | None = None  # per worker
    memory: str = ""  # per worker
    walltime: int | None = None  # seconds
    bytes_in: str = ""
    bytes_out: str = ""
    output_chunks: int | None = None
    # what the plan predicted (plan.json's forecast); None: no prediction
    compute_s: float | None = None
    compute_low_s: float | None = None
    compute_high_s: float | None = None
    source: str = ""  # where the prediction's throughput came from
    cores: int | None = None  # per job
    cpu_hours_requested: float | None = None
    cpu_hours_predicted: float | None = None
    start: str = ""  # SLURM's expected start


@dataclass
class RunRecord:
    """What a run's directory holds, read leniently; ``missing`` and ``problems`` say what not."""

    path: Path
    run_id: str
    state: RunStatus = field(default_factory=RunStatus)
    summary: dict[str, Any] = field(default_factory=dict)
    plan: Planned = field(default_factory=Planned)
    plan_text: str = ""
    spec_text: str = ""
    samples: list[Sample] = field(default_factory=list)
    start: float | None = None  # epoch seconds: the run directory's creation
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def rundir(self) -> RunDir:
        return RunDir(self.path.name, self.path)


def load(run_dir: Path) -> RunRecord:
    """Read a run directory; never raises for missing or malformed files."""
    path = Path(run_dir).absolute()
    rec = RunRecord(path, path.name)
    rd = rec.rundir
    rec.state = RunStatus.lenient(_json(rec, rd.state_file))
    rec.summary = _json(rec, rd.summary)
    rec.plan_text = _text(rec, rd.plan_txt)
    # Older runs have no plan.json: the plan is then read from plan.txt, without a word.
    plan = _json(rec, rd.plan_json, quiet=True)
    rec.plan = plan_from_json(plan) if plan else plan_from_text(rec.plan_text)
    rec.spec_text = _text(rec, rd.jobspec)
    rec.run_id = str(rec.state.run_id or rec.summary.get("run_id") or path.name)
    raw = _timeline(rec, rd.timeline)
    created = rec.state.created
    rec.start = created if created is not None else (raw[0].t if raw else None)
    origin = rec.start or 0.0
    rec.samples = [dataclasses.replace(s, t=s.t - origin) for s in raw]
    return rec


def _text(rec: RunRecord, path: Path, *, quiet: bool = False) -> str:
    name = path.name
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        if not quiet:
            rec.missing.append(name)
    except OSError as exc:
        rec.problems.append(f"{name}: cannot read ({exc.strerror or exc})")
    return ""


def _json(rec: RunRecord, path: Path, *, quiet: bool = False) -> dict[str, Any]:
    name = path.name
    text = _text(rec, path, quiet=quiet)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        rec.problems.append(f"{name}: not JSON ({exc})")
        return {}
    if not isinstance(data, dict):
        rec.problems.append(f"{name}: not a JSON object")
        return {}
    return data


def _timeline(rec: RunRecord, path: Path) -> list[Sample]:
    """The timeline's samples in time order, with epoch times."""
    found = []
    bad = 0
    for line in _text(rec, path).splitlines():
        try:
            d = json.loads(line)
            t = number(d["t"])
            if t is None:
                raise ValueError("no time")
        except (ValueError, KeyError, TypeError):
            bad += 1  # a line cut short by a killed driver, or not ours
            continue
        workers = d.get("workers") if isinstance(d.get("workers"), dict) else {}
        jobs = d.get("jobs") if isinstance(d.get("jobs"), dict) else {}
        found.append(Sample(t, str(d.get("phase", "")),
                            {str(k): _worker(v) for k, v in workers.items()
                             if isinstance(v, dict)},
                            {str(k): str(v) for k, v in jobs.items()},
                            integer(d.get("blocks")), integer(d.get("total"))))
    if bad:
        rec.problems.append(f"timeline.jsonl: {bad} unreadable line(s) skipped")
    return sorted(found, key=lambda s: s.t)


def _worker(w: dict[str, Any]) -> Worker:
    return Worker(integer(w.get("memory")) or 0, integer(w.get("memory_limit")) or 0,
                  str(w.get("host") or ""), str(w.get("address") or ""))


def plan_from_json(d: dict[str, Any]) -> Planned:
    """``plan.json``: ``dataclasses.asdict`` of :class:`hpcscale.sizing.Plan`."""
    w = d["workload"] if isinstance(d.get("workload"), dict) else {}
    jobs, per_job = integer(d.get("jobs")), integer(d.get("workers_per_job"))
    memory, bytes_in, bytes_out = (integer(x) for x in (d.get("worker_memory"),
                                                        w.get("bytes_in"), w.get("bytes_out")))
    f = d["forecast"] if isinstance(d.get("forecast"), dict) else {}
    threads = integer(d.get("threads_per_worker"))
    return Planned(
        compute_s=number(f.get("compute_s")), compute_low_s=number(f.get("compute_low_s")),
        compute_high_s=number(f.get("compute_high_s")),
        source=str(f.get("source") or "") if number(f.get("compute_s")) is not None else "",
        cores=per_job * threads if per_job is not None and threads is not None else None,
        cpu_hours_requested=number(f.get("cpu_hours_requested")),
        cpu_hours_predicted=number(f.get("cpu_hours_predicted")),
        start=str(f.get("start") or ""),
        kind=str(d.get("kind") or ""), jobs=jobs,
        workers=jobs * per_job if jobs is not None and per_job is not None else None,
        threads=integer(d.get("threads_per_worker")),
        memory=units.format_bytes(memory) if memory else "",
        walltime=integer(d.get("walltime")) or None,
        bytes_in="" if bytes_in is None else units.format_bytes(bytes_in),
        bytes_out="" if bytes_out is None else units.format_bytes(bytes_out),
        output_chunks=integer(w.get("output_chunks")))


_PLAN_JOBS = re.compile(r"^(\d+) x (\d+) worker\(s\) x (\d+) thread\(s\), (\S+) per worker")
_PLAN_SIZE = re.compile(r"^(\S+) in (\d+) chunks")


def plan_from_text(text: str) -> Planned:
    """``plan.txt`` as :meth:`hpcscale.sizing.Plan.lines` writes it, for runs without plan.json."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        fields.setdefault(key, value.strip())
    site = fields.get("site", "")
    kind = site.rpartition("(")[2].rstrip(")") if site.endswith(")") else ""
    jobs = _PLAN_JOBS.match(fields.get("jobs", ""))
    sizes = {k: _PLAN_SIZE.match(fields.get(k, "")) for k in ("input", "output")}
    try:
        walltime = units.parse_slurm_time(fields.get("walltime", "")) or None
    except ValueError:
        walltime = None
    return Planned(
        kind=kind, jobs=int(jobs[1]) if jobs else None,
        workers=int(jobs[1]) * int(jobs[2]) if jobs else None,
        threads=int(jobs[3]) if jobs else None, memory=jobs[4] if jobs else "",
        cores=int(jobs[2]) * int(jobs[3]) if jobs else None,
        walltime=walltime,
        bytes_in=m[1] if (m := sizes["input"]) else "",
        bytes_out=m[1] if (m := sizes["output"]) else "",
        output_chunks=int(m[2]) if (m := sizes["output"]) else None)


def number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    # type(), not isinstance(): a long timeline has a few numbers per worker per second
    kind = type(value)
    return float(value) if kind is float or kind is int else None


def integer(value: Any) -> int | None:
    """A JSON number as an int; None for anything else."""
    kind = type(value)
    return value if kind is int else int(value) if kind is float and math.isfinite(value) else None


def state_of(rec: RunRecord) -> str:
    """The run's state as ``state.json`` has it ("unknown" without one)."""
    return str(rec.state.state)


def memory_limit(rec: RunRecord) -> int | None:
    """The workers' memory limit (the most common one)."""
    limits = Counter(w.limit for s in rec.samples for w in s.workers.values() if w.limit)
    return limits.most_common(1)[0][0] if limits else None


def peaks(rec: RunRecord) -> dict[str, int | None]:
    """``summary.peak_memory``: worker (name; an older run's may be an address) -> bytes."""
    found = rec.summary.get("peak_memory")
    return {str(k): integer(v) for k, v in found.items()} if isinstance(found, dict) else {}


def find_run(run: str) -> RunDir:
    """A run by id, unique prefix, or ``last`` (the newest)."""
    return RunDir.find(run)
