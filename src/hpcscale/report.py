"""The run report: ``report.html`` in a run's directory, the plan beside what happened.

:func:`write_report` builds it from the files every run leaves there
(``state.json``, ``plan.json`` or an older run's ``plan.txt``, ``summary.json``,
``timeline.jsonl``, dask's ``dask-report.html``). Any of them may be missing or
cut short (a failed or cancelled run, a driver killed mid-line): the report
then says what is missing and leaves out what it cannot show; it never raises.
The summary figure (:mod:`hpcscale.report_figure`, imported only when a figure
is drawn: matplotlib takes a while to import) is embedded as PNG, so the file
is one self-contained page that can be copied anywhere and opened offline.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import logging
import math
import os
import re
import statistics
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote

from hpcscale import __version__, units
from hpcscale import runs as runlib
from hpcscale.compute import DASK_REPORT, DASK_REPORT_AFTER
from hpcscale.errors import OutputError, UsageError
from hpcscale.io.output import check_not_input
from hpcscale.rundir import RunDir, list_runs

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["REPORT", "RunRecord", "ensure_report", "find_run", "load", "report_figure",
           "write_png", "write_report"]

log = logging.getLogger(__name__)

REPORT = "report.html"
# What the report is built from: a report older than any of them is rebuilt.
SOURCES = ("state.json", "plan.json", "plan.txt", "summary.json", "timeline.jsonl",
           "jobspec.toml", DASK_REPORT)
_RUNNING = {"RUNNING", "COMPLETING", "COMPLETED"}


# -- reading a run directory ----------------------------------------------------------------------


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


@dataclass
class RunRecord:
    """What a run's directory holds, read leniently; ``missing`` and ``problems`` say what not."""

    path: Path
    run_id: str
    state: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    plan: Planned = field(default_factory=Planned)
    plan_text: str = ""
    spec_text: str = ""
    samples: list[Sample] = field(default_factory=list)
    start: float | None = None  # epoch seconds: the run directory's creation
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def load(run_dir: Path) -> RunRecord:
    """Read a run directory; never raises for missing or malformed files."""
    path = Path(run_dir).absolute()
    rec = RunRecord(path, path.name)
    rec.state = _json(rec, "state.json")
    rec.summary = _json(rec, "summary.json")
    rec.plan_text = _text(rec, "plan.txt")
    # Older runs have no plan.json: the plan is then read from plan.txt, without a word.
    plan = _json(rec, "plan.json", quiet=True)
    rec.plan = plan_from_json(plan) if plan else plan_from_text(rec.plan_text)
    rec.spec_text = _text(rec, "jobspec.toml")
    rec.run_id = str(rec.state.get("run_id") or rec.summary.get("run_id") or path.name)
    raw = _timeline(rec)
    created = number(rec.state.get("created"))
    rec.start = created if created is not None else (raw[0].t if raw else None)
    origin = rec.start or 0.0
    rec.samples = [dataclasses.replace(s, t=s.t - origin) for s in raw]
    return rec


def _text(rec: RunRecord, name: str, *, quiet: bool = False) -> str:
    try:
        return (rec.path / name).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        if not quiet:
            rec.missing.append(name)
    except OSError as exc:
        rec.problems.append(f"{name}: cannot read ({exc.strerror or exc})")
    return ""


def _json(rec: RunRecord, name: str, *, quiet: bool = False) -> dict[str, Any]:
    text = _text(rec, name, quiet=quiet)
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


def _timeline(rec: RunRecord) -> list[Sample]:
    """The timeline's samples in time order, with epoch times."""
    found = []
    bad = 0
    for line in _text(rec, "timeline.jsonl").splitlines():
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
    return Planned(
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


# -- what the numbers say -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobTimes:
    """A SLURM job as the timeline saw it; times in seconds since the run started."""

    first_seen: float
    running: float | None
    last_state: str

    @property
    def waited(self) -> float | None:
        return None if self.running is None else self.running - self.first_seen


def job_times(samples: list[Sample]) -> dict[str, JobTimes]:
    """Per job: when it was first seen in squeue, first seen running, its last state seen."""
    first: dict[str, float] = {}
    running: dict[str, float] = {}
    last: dict[str, str] = {}
    for s in samples:
        for job, state in s.jobs.items():
            first.setdefault(job, s.t)
            if state in _RUNNING:
                running.setdefault(job, s.t)
            last[job] = state
    return {j: JobTimes(first[j], running.get(j), last[j])
            for j in sorted(first, key=lambda j: (len(j), j))}


def memory_limit(rec: RunRecord) -> int | None:
    """The workers' memory limit (the most common one)."""
    limits = Counter(w.limit for s in rec.samples for w in s.workers.values() if w.limit)
    return limits.most_common(1)[0][0] if limits else None


def _secs(value: Any) -> str:
    found = number(value)
    return "-" if found is None else f"{found:.1f} s"


def _bytes(value: Any) -> str:
    found = integer(value)
    return "-" if found is None else units.format_bytes(found)


def _peaks(rec: RunRecord) -> dict[str, int | None]:
    """``summary.peak_memory``: worker (name; an older run's may be an address) -> bytes."""
    peaks = rec.summary.get("peak_memory")
    return {str(k): integer(v) for k, v in peaks.items()} if isinstance(peaks, dict) else {}


def state_of(rec: RunRecord) -> str:
    return str(rec.state.get("state") or "unknown")


def _known(value: int | None) -> str:
    return "-" if value is None else str(value)


def facts(rec: RunRecord) -> list[tuple[str, str, str]]:
    """The plan against what happened: (what, planned, happened) rows, as text."""
    s, plan, jobs = rec.summary, rec.plan, job_times(rec.samples)
    rows: list[tuple[str, str, str]] = []
    ids = set(jobs) | {str(j) for j in s.get("jobs") or []} | set(rec.state.get("jobs") or {})
    if ids or plan.kind == "slurm":
        started = sum(1 for j in jobs.values() if j.running is not None)
        rows.append(("SLURM jobs", _known(plan.jobs),
                     f"{len(ids)} submitted, {started} seen running"))
        waits = sorted(w for j in jobs.values() if (w := j.waited) is not None)
        if waits and f"{waits[0]:.1f}" == f"{waits[-1]:.1f}":
            rows.append(("wait in queue", "-", f"{waits[0]:.1f} s for each of {len(waits)} "
                         "job(s) seen running"))
        elif waits:
            rows.append(("wait in queue", "-",
                         f"{waits[0]:.1f} s to {waits[-1]:.1f} s (median "
                         f"{statistics.median(waits):.1f} s) over {len(waits)} job(s)"))
        gone = [(what, [str(j) for j in s.get(key) or []])
                for what, key in (("lost", "lost_jobs"), ("retired", "retired_jobs"))]
        rows.append(("lost / retired jobs", "0 / 0", " / ".join(str(len(g)) for _, g in gone)
                     + "".join(f"; {w}: {' '.join(g)}" for w, g in gone if g)))
    most = max((len(x.workers) for x in rec.samples), default=0)
    rows.append(("workers", f"{_known(plan.workers)} x {_known(plan.threads)} thread(s)",
                 f"{s.get('workers', '-')} at the end, at most {most} at once"))
    nodes = [str(n) for n in s.get("nodes") or []]
    rows.append(("nodes", "-", f"{len(nodes)}: {', '.join(nodes)}" if nodes else "-"))
    peak = max((v for v in _peaks(rec).values() if v), default=None)
    rows.append(("memory per worker", plan.memory or "-",
                 f"limit {_bytes(memory_limit(rec))}, highest peak {_bytes(peak)}"))
    rows += _start_rows(rec)
    blocks, resumed = integer(s.get("blocks")), integer(s.get("blocks_resumed")) or 0
    seen = [x for x in rec.samples if x.blocks is not None]
    happened = (f"{blocks - resumed} written, {resumed} resumed" if blocks
                else f"{seen[-1].blocks} of {seen[-1].total} written" if seen else "-")
    rows.append(("output blocks", "-" if plan.output_chunks is None
                 else f"{plan.output_chunks} chunks", happened))
    rows.append(("bytes in / out (uncompressed)",
                 f"{plan.bytes_in or '-'} / {plan.bytes_out or '-'}",
                 f"{_bytes(s.get('bytes_in'))} / {_bytes(s.get('bytes_out'))}"))
    compute = number(s.get("compute_s"))
    rows.append(("compute time", "-", _secs(compute)))
    if compute and state_of(rec) == "done":
        rates = [f"{_bytes((number(s.get(k)) or 0) / compute)}/s"
                 for k in ("bytes_in", "bytes_out")]
        rows.append(("throughput in / out", "-", " / ".join(rates)))
    seconds, limit = number(s.get("seconds")), plan.walltime
    share = f" ({100 * seconds / limit:.0f}% of the walltime)" if seconds and limit else ""
    rows.append(("run time (walltime)", units.format_walltime(limit) if limit else "-",
                 _secs(seconds) + share))
    return rows


def _start_rows(rec: RunRecord) -> list[tuple[str, str, str]]:
    """The startup (command start to run start) and the first worker, from the run's start.

    Older runs recorded no startup, and counted the first worker from the command's start.
    """
    s = rec.summary
    sampled = next((x.t for x in rec.samples if x.workers), None)
    first = number(s.get("first_worker_s"))
    if "startup_s" not in s:
        told = [*([f"{sampled:.1f} s after the run started"] if sampled is not None else []),
                *([f"{first:.1f} s after the command started"] if first is not None else [])]
        return [("first worker", "-", "; ".join(told) or "-")]
    startup = number(s.get("startup_s")) or None  # 0: not the first run of its command
    first = first if first is not None else sampled
    after = f" ({startup + first:.1f} s after the command started)" if startup and first else ""
    return [("startup", "-", f"{startup:.1f} s from the command's start to the run's (Python, "
             "imports, reading the input, planning)" if startup else "-"),
            ("first worker", "-", "-" if first is None
             else f"{first:.1f} s after the run started{after}")]


# -- the page -------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(head: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _header(rec: RunRecord) -> str:
    st, s = rec.state, rec.summary
    created = number(st.get("created"))
    rows = [
        ("state", state_of(rec)),
        ("site", st.get("site") or s.get("site") or "-"),
        ("output", st.get("output") or s.get("output") or "-"),
        ("host", st.get("host") or "-"),
        ("started", time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(created))
         if created is not None else "-"),
        ("run time", _secs(s.get("seconds"))),
        ("run directory", str(rec.path)),
    ]
    if st.get("batch_job"):
        rows.insert(2, ("batch job", st["batch_job"]))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    parts = [f'<dl class="head state-{_e(state_of(rec))}">{items}</dl>']
    if st.get("error"):
        parts.append(f'<p class="error">error: {_e(st["error"])}</p>')
    if rec.missing:
        parts.append(f'<p class="missing">not in the run directory: {_e(", ".join(rec.missing))}'
                     "; what needs them is left out.</p>")
    parts += [f'<p class="missing">{_e(p)}</p>' for p in rec.problems]
    return "\n".join(parts)


def _plan_section(rec: RunRecord) -> str:
    plan = f"<pre>{_e(rec.plan_text.rstrip())}</pre>" if rec.plan_text else \
        '<p class="missing">no plan.txt</p>'
    return (f'<div class="pair"><div><h3>the plan</h3>{plan}</div>'
            f"<div><h3>planned and happened</h3>"
            f"{_table(('', 'planned', 'happened'), list(facts(rec)))}</div></div>")


def _figure_section(rec: RunRecord) -> str:
    from hpcscale import report_figure as figure  # matplotlib: only where a figure is drawn

    data = base64.b64encode(figure.png(figure.draw(rec))).decode("ascii")
    return (f'<img alt="workers, memory per worker and blocks written over time" '
            f'src="data:image/png;base64,{data}">'
            "<p class=note>Sampled about once a second by the driver (every half second while "
            "it waits for workers). The same figure: <code>hpcscale report "
            f"{_e(rec.run_id)} --png FILE</code>.</p>")


def _jobs_section(rec: RunRecord) -> str:
    jobs = job_times(rec.samples)
    if not jobs:
        return "<p class=note>No SLURM job states were recorded (a local run, or the run " \
               "ended before its jobs were submitted).</p>"
    lost = {str(j) for j in rec.summary.get("lost_jobs") or []}
    retired = {str(j) for j in rec.summary.get("retired_jobs") or []}
    rows = [(j, f"{t.first_seen:.1f}", "-" if t.running is None else f"{t.running:.1f}",
             _secs(t.waited), t.last_state,
             "lost" if j in lost else "retired" if j in retired else "")
            for j, t in jobs.items()]
    return (_table(("job", "first seen (s)", "seen running (s)", "wait in queue",
                    "last state seen", ""), rows)
            + "<p class=note>Times in seconds since the run started, as squeue showed the jobs "
              "while the driver waited for workers; the wait runs from the first sample that "
              "lists the job to the first that shows it running.</p>")


def _memory_section(rec: RunRecord) -> str:
    seen: dict[str, list[Any]] = {}  # worker -> [host, highest sampled, limit, peak RSS]
    addresses: dict[str, str] = {}  # address -> worker
    for s in rec.samples:
        for name, w in s.workers.items():
            row = seen.setdefault(name, ["", 0, 0, None])
            row[0] = w.host or row[0]
            row[1] = max(row[1], w.memory)
            row[2] = w.limit or row[2]
            if w.address:
                addresses[w.address] = name
    for key, value in _peaks(rec).items():
        _row_of(key, seen, addresses)[3] = value
    rows = [(name, host or "-", _bytes(high or None), _bytes(peak), _bytes(limit or None),
             f"{100 * peak / limit:.0f}%" if peak and limit else "-")
            for name, (host, high, limit, peak) in sorted(seen.items())]
    if not rows:
        return "<p class=note>No worker was seen.</p>"
    return (_table(("worker", "host", "highest sampled", "peak RSS", "limit", "peak / limit"),
                   rows)
            + "<p class=note>Highest sampled: the worker's memory as dask reported it in the "
              "timeline; peak RSS: the worker process's largest resident memory, asked at the "
              "end of the computation.</p>")


def _row_of(key: str, seen: dict[str, list[Any]], addresses: dict[str, str]) -> list[Any]:
    """The row of ``peak_memory``'s worker ``key``: a worker's name as the timeline has it,
    else its address. Older runs keyed it by address and recorded none in the timeline:
    the one worker on the address's host is then that worker."""
    if key in seen:
        return seen[key]
    if key in addresses:
        return seen[addresses[key]]
    host = key.rpartition("://")[2].rpartition(":")[0]
    same = [row for row in seen.values() if row[0] == host and row[3] is None]
    if host and len(same) == 1 and sum(r[0] == host for r in seen.values()) == 1:
        return same[0]
    return seen.setdefault(key, [host, 0, same[0][2] if same else 0, None])


def _dask_section(rec: RunRecord) -> str:
    if not (rec.path / DASK_REPORT).is_file():
        compute = number(rec.summary.get("compute_s"))
        why = (f"it is written for computations of {DASK_REPORT_AFTER:.0f} s or more, and "
               f"this one took {compute:.1f} s" if compute is not None
               and compute < DASK_REPORT_AFTER and state_of(rec) == "done"
               else "the computation did not start, or its driver was killed")
        return f"<p class=note>dask wrote no performance report: {_e(why)}.</p>"
    return (f'<p><a href="{quote(DASK_REPORT)}">{DASK_REPORT}</a>: dask\'s own performance '
            "report of the computation, beside this file: the task stream, worker profiles, "
            "bandwidth between workers, the scheduler's timings. It loads bokeh from "
            "cdn.bokeh.org, so open it where there is network.</p>")


def _files_section(rec: RunRecord) -> str:
    names = [p for p in sorted(rec.path.iterdir()) if p.is_file() and not p.name.startswith(".")]
    logs = rec.path / "logs"
    if logs.is_dir():
        names += sorted(p for p in logs.iterdir() if p.is_file())
    items = "".join(
        f'<li><a href="{_e(quote(p.relative_to(rec.path).as_posix()))}">'
        f"{_e(p.relative_to(rec.path).as_posix())}</a> ({_e(_bytes(p.stat().st_size))})</li>"
        for p in names if p.name != REPORT)
    spec = (f"<details><summary>the job spec (jobspec.toml)</summary><pre>"
            f"{_e(rec.spec_text.rstrip())}</pre></details>") if rec.spec_text else ""
    return f"{spec}<ul>{items}</ul>"


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1100px;padding:0 1em;
color:#222}
h1{font-size:1.5em;margin-bottom:.3em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
h3{font-size:1em;margin:.2em 0}
dl.head{display:grid;grid-template-columns:max-content 1fr;gap:.1em 1em}dt{color:#666}
dd{margin:0;font-family:monospace}
.state-done dd:first-of-type{color:#1a7f37;font-weight:bold}
.state-failed dd:first-of-type,.state-cancelled dd:first-of-type{color:#c62828;font-weight:bold}
.error{background:#fdecea;border-left:4px solid #c62828;padding:.5em;font-family:monospace;
white-space:pre-wrap}
.missing{background:#fff8e1;border-left:4px solid #f9a825;padding:.4em}
.note{color:#555;font-size:.9em}
.pair{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:1.5em}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:12px}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #e4e4e4;padding:.25em .6em;text-align:left;vertical-align:top}
img{max-width:100%;height:auto}
"""

_SECTIONS: tuple[tuple[str, Callable[[RunRecord], str]], ...] = (
    ("Plan and what happened", _plan_section),
    ("Over time", _figure_section),
    ("SLURM jobs", _jobs_section),
    ("Memory per worker", _memory_section),
    ("Task stream and profiles", _dask_section),
    ("Files", _files_section),
)


def render(rec: RunRecord) -> str:
    """The report page of a run; a section that cannot be built says why instead."""
    body = [f"<h1>hpcscale run {_e(rec.run_id)}</h1>", _guard(_header, rec)]
    for title, build in _SECTIONS:
        body.append(f"<h2>{_e(title)}</h2>\n{_guard(build, rec)}")
    body.append(f"<p class=note>Written by hpcscale {_e(__version__)} on "
                f"{_e(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>hpcscale run {_e(rec.run_id)}</title><style>{_CSS}</style></head>"
            "<body>\n" + "\n".join(body) + "\n</body></html>\n")


def _guard(build: Callable[[RunRecord], str], rec: RunRecord) -> str:
    try:
        return build(rec)
    except Exception as exc:  # a report shows what it can of any run
        log.warning("run report %s: %s failed", rec.path, build.__name__, exc_info=True)
        return f'<p class="missing">this part could not be built: {_e(type(exc).__name__)}: ' \
               f"{_e(exc)}</p>"


# -- writing and finding --------------------------------------------------------------------------


def build(run_dir: Path) -> Path:
    """Write ``report.html`` into ``run_dir`` (atomically); OSError if it cannot."""
    target = Path(run_dir) / REPORT
    tmp = target.with_name(f".{REPORT}.{os.getpid()}.tmp")
    try:
        tmp.write_text(render(load(run_dir)), encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_report(run_dir: Path) -> Path:
    """Write the run's ``report.html`` and return its path; never raises (logs instead).

    Meant for the end of every run, failed and cancelled ones too.
    """
    try:
        return build(run_dir)
    except Exception:  # the report must not hide the run's own outcome
        log.warning("could not write the run report in %s", run_dir, exc_info=True)
        return Path(run_dir) / REPORT


def find_run(run: str) -> RunDir:
    """A run by id, unique prefix, or ``last`` (the newest)."""
    if run == "last":
        found = list_runs()
        if not found:
            raise UsageError("RUN 'last': no runs yet (see `hpcscale runs`)")
        return found[-1]
    return runlib.find(run)


def _stale(run_dir: Path) -> bool:
    target = run_dir / REPORT
    if not target.is_file():
        return True
    made = target.stat().st_mtime
    return any(p.is_file() and p.stat().st_mtime > made for p in (run_dir / n for n in SOURCES))


def ensure_report(run: str) -> tuple[RunDir, Path]:
    """The report of a run (see :func:`find_run`), rebuilt when older than the run's files."""
    rd = find_run(run)
    if not _stale(rd.path):
        return rd, rd.path.absolute() / REPORT
    try:
        return rd, build(rd.path).absolute()
    except OSError as exc:
        raise OutputError(f"cannot write {rd.path / REPORT}: {exc.strerror or exc}") from exc


def report_figure(run_dir: Path) -> Figure:
    """The report's summary figure of a run: workers, memory and blocks over time."""
    from hpcscale import report_figure as figure

    return figure.draw(load(run_dir))


def check_png(run_dir: Path, target: Path, *, overwrite: bool = False) -> None:
    """Refuse, in one line, a ``--png`` path that must not be written: a directory, an
    existing file (unless ``overwrite``), a missing folder, or a path in the run's input."""
    try:
        recorded = tomllib.loads((run_dir / "jobspec.toml").read_text(encoding="utf-8"))
        inputs = [str(recorded["input"]["path"])]
    except (OSError, ValueError, KeyError, TypeError):
        inputs = []  # a run without a readable spec: nothing to protect here
    check_not_input(target, inputs, OutputError, "output")
    if target.is_dir():
        raise OutputError(f"output {target} is a directory; name a .png file")
    if target.exists() and not overwrite:
        raise OutputError(f"output {target} exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise OutputError(f"output {target}: directory {target.parent} does not exist")


def write_png(run_dir: Path, target: Path, *, overwrite: bool = False) -> Path:
    """Write the report's summary figure of a run to ``target`` (a new PNG unless ``overwrite``)."""
    check_png(run_dir, target, overwrite=overwrite)
    from hpcscale import report_figure as figure

    data = figure.png(report_figure(run_dir))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"output {target}: cannot write: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target
