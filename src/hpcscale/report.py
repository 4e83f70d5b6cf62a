"""The run report: ``report.html`` in a run's directory, the plan beside what happened.

:func:`write_report` builds it from the files every run leaves there
(``state.json``, ``plan.txt``, ``summary.json``, ``timeline.jsonl``, dask's
``dask-report.html``). Any of them may be missing or cut short (a failed or
cancelled run, a driver killed mid-line): the report then says what is missing
and leaves out what it cannot show; it never raises. The figures are drawn on
matplotlib's Agg canvas (no display, no pyplot state) and embedded as PNG, so
the file is one self-contained page that can be copied anywhere and opened offline.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
import json
import logging
import math
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from hpcscale import __version__, units
from hpcscale import runs as runlib
from hpcscale.compute import DASK_REPORT
from hpcscale.errors import OutputError, UsageError
from hpcscale.rundir import RunDir, list_runs

__all__ = ["REPORT", "RunRecord", "ensure_report", "find_run", "load", "report_figure",
           "write_png", "write_report"]

log = logging.getLogger(__name__)

REPORT = "report.html"
# What the report is built from: a report older than any of them is rebuilt.
SOURCES = ("state.json", "plan.txt", "summary.json", "timeline.jsonl", "jobspec.toml",
           DASK_REPORT)
FIGSIZE, DPI = (10.0, 8.0), 100  # the summary figure: 1000 x 800 pixels
MAX_POINTS = 1500  # samples drawn per line: a longer timeline is thinned, its peaks kept
MAX_LINES = 12  # workers drawn one line each; more are drawn as a min-median-max band
_RUNNING = {"RUNNING", "COMPLETING", "COMPLETED"}
# The shading of the figures: what the driver was doing.
_PHASES = {"starting": ("#ececec", "starting the cluster"),
           "waiting": ("#f6e3c3", "waiting for workers"),
           "computing": ("#d6e6f5", "computing"),
           "closing": ("#dcdcdc", "closing the cluster")}
_LEGEND: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 8,
                           "frameon": False}


# -- reading a run directory ----------------------------------------------------------------------


class Worker(NamedTuple):
    """A worker in one sample: memory and its limit in bytes (0: not known), its host."""

    memory: int
    limit: int
    host: str


@dataclass(frozen=True)
class Sample:
    """One line of ``timeline.jsonl``: ``t`` in seconds since the run started."""

    t: float
    phase: str
    workers: dict[str, Worker]
    jobs: dict[str, str]
    blocks: int | None
    total: int | None


@dataclass
class RunRecord:
    """What a run's directory holds, read leniently; ``missing`` and ``problems`` say what not."""

    path: Path
    run_id: str
    state: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
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
    rec.spec_text = _text(rec, "jobspec.toml")
    rec.run_id = str(rec.state.get("run_id") or rec.summary.get("run_id") or path.name)
    raw = _timeline(rec)
    created = _num(rec.state.get("created"))
    rec.start = created if created is not None else (raw[0].t if raw else None)
    origin = rec.start or 0.0
    rec.samples = [dataclasses.replace(s, t=s.t - origin) for s in raw]
    return rec


def _text(rec: RunRecord, name: str) -> str:
    try:
        return (rec.path / name).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        rec.missing.append(name)
    except OSError as exc:
        rec.problems.append(f"{name}: cannot read ({exc.strerror or exc})")
    return ""


def _json(rec: RunRecord, name: str) -> dict[str, Any]:
    text = _text(rec, name)
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
            t = _num(d["t"])
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
                            _int(d.get("blocks")), _int(d.get("total"))))
    if bad:
        rec.problems.append(f"timeline.jsonl: {bad} unreadable line(s) skipped")
    return sorted(found, key=lambda s: s.t)


def _worker(w: dict[str, Any]) -> Worker:
    return Worker(_int(w.get("memory")) or 0, _int(w.get("memory_limit")) or 0,
                  str(w.get("host") or ""))


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number = _num(value)
    return int(number) if number is not None else None


# -- what the numbers say -------------------------------------------------------------------------


_PLAN_JOBS = re.compile(r"^jobs\s+(\d+) x (\d+) worker\(s\) x (\d+) thread\(s\), (\S+) per worker")


def _plan_field(rec: RunRecord, name: str) -> str:
    """The text of the plan line ``name`` (``jobs``, ``walltime``, ...), or ""."""
    for line in rec.plan_text.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return value.strip()
    return ""


def _planned(rec: RunRecord) -> dict[str, Any]:
    m = _PLAN_JOBS.match(f"jobs {_plan_field(rec, 'jobs')}")
    if not m:
        return {}
    jobs, per_job, threads = int(m[1]), int(m[2]), int(m[3])
    return {"jobs": jobs, "workers": jobs * per_job, "threads": threads, "memory": m[4]}


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


def _limit(rec: RunRecord) -> int | None:
    """The workers' memory limit (the most common one)."""
    limits = Counter(w.limit for s in rec.samples for w in s.workers.values() if w.limit)
    return limits.most_common(1)[0][0] if limits else None


def _secs(value: Any) -> str:
    number = _num(value)
    return "-" if number is None else f"{number:.1f} s"


def _bytes(value: Any) -> str:
    number = _int(value)
    return "-" if number is None else units.format_bytes(number)


def _peak(rec: RunRecord) -> int | None:
    peaks = [v for v in (_int(p) for p in (rec.summary.get("peak_memory") or {}).values()) if v]
    return max(peaks) if peaks else None


def state_of(rec: RunRecord) -> str:
    return str(rec.state.get("state") or "unknown")


def facts(rec: RunRecord) -> list[tuple[str, str, str]]:
    """The plan against what happened: (what, planned, happened) rows, as text."""
    s, plan, jobs = rec.summary, _planned(rec), job_times(rec.samples)
    rows: list[tuple[str, str, str]] = []
    ids = set(jobs) | {str(j) for j in s.get("jobs") or []} | set(rec.state.get("jobs") or {})
    if ids or _plan_field(rec, "site").endswith("(slurm)"):
        started = sum(1 for j in jobs.values() if j.running is not None)
        rows.append(("SLURM jobs", str(plan.get("jobs", "-")),
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
    rows.append(("workers", f"{plan.get('workers', '-')} x {plan.get('threads', '-')} thread(s)",
                 f"{s.get('workers', '-')} at the end, at most {most} at once"))
    nodes = [str(n) for n in s.get("nodes") or []]
    rows.append(("nodes", "-", f"{len(nodes)}: {', '.join(nodes)}" if nodes else "-"))
    rows.append(("memory per worker", plan.get("memory", "-"),
                 f"limit {_bytes(_limit(rec))}, highest peak {_bytes(_peak(rec))}"))
    first = next((x.t for x in rec.samples if x.workers), None)
    rows.append(("first worker", "-", "; ".join(
        [*([f"{first:.1f} s after the run started"] if first is not None else []),
         *([f"{_secs(s['first_worker_s'])} after the command started"]
           if _num(s.get("first_worker_s")) is not None else [])]) or "-"))
    blocks, resumed = _int(s.get("blocks")), _int(s.get("blocks_resumed")) or 0
    seen = [x for x in rec.samples if x.blocks is not None]
    happened = (f"{blocks - resumed} written, {resumed} resumed" if blocks
                else f"{seen[-1].blocks} of {seen[-1].total} written" if seen else "-")
    rows.append(("output blocks", _plan_field(rec, "output").rpartition(" in ")[2] or "-",
                 happened))
    rows.append(("bytes in / out (uncompressed)",
                 " / ".join(_plan_field(rec, k).partition(" in ")[0] or "-"
                            for k in ("input", "output")),
                 f"{_bytes(s.get('bytes_in'))} / {_bytes(s.get('bytes_out'))}"))
    compute = _num(s.get("compute_s"))
    rows.append(("compute time", "-", _secs(compute)))
    if compute and state_of(rec) == "done":
        rates = [f"{_bytes((_num(s.get(k)) or 0) / compute)}/s" for k in ("bytes_in", "bytes_out")]
        rows.append(("throughput in / out", "-", " / ".join(rates)))
    walltime, seconds = _plan_field(rec, "walltime"), _num(s.get("seconds"))
    try:
        limit = units.parse_slurm_time(walltime) if walltime else None
    except ValueError:
        limit = None
    share = f" ({100 * seconds / limit:.0f}% of the walltime)" if seconds and limit else ""
    rows.append(("run time (walltime)", walltime or "-", _secs(seconds) + share))
    return rows


# -- the figure -----------------------------------------------------------------------------------


def report_figure(run_dir: Path) -> Figure:
    """The report's summary figure of a run: workers, memory and blocks over time."""
    return _figure(load(run_dir))


def _figure(rec: RunRecord) -> Figure:
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    # Fixed margins: constrained layout would double the time to draw.
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={
        "left": 0.07, "right": 0.78, "top": 0.92, "bottom": 0.07, "hspace": 0.3})
    fig.suptitle(_plain(f"run {rec.run_id}: {state_of(rec)} on site "
                        f"{rec.state.get('site') or rec.summary.get('site') or '?'}"),
                 fontsize=12)
    samples = _thin(rec.samples)
    end = _num(rec.summary.get("seconds"))
    resumed = _int(rec.summary.get("blocks_resumed")) or 0
    titles = ("workers connected over time", "memory per worker (of its process, as dask "
              "reports it)", "output blocks written"
              + (f" ({resumed} resumed from an earlier run)" if resumed else ""))
    for ax, draw, title in zip(axes, (_workers, _memory, _blocks), titles, strict=True):
        _phases(ax, samples, end, legend=ax is axes[0])
        if samples:
            draw(ax, rec, samples)
        else:
            ax.set_yticks([])
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    if not samples:
        axes[1].text(0.5, 0.5, "no timeline samples in the run directory: the run ended "
                     "before its cluster started, or its driver was killed",
                     ha="center", va="center", transform=axes[1].transAxes, color="0.4")
    _time_axis(axes[-1], max([end or 0.0, *(s.t for s in samples)]))
    return fig


def _time_axis(ax: Axes, last: float) -> None:
    """Seconds for a short run; hours and minutes, on whole minutes, for a long one."""
    if last > 0:
        ax.set_xlim(0, last)
    if last <= 600:
        ax.set_xlabel("seconds since the run started")
        return
    step = next((m for m in (1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720) if last / 60 / m <= 10),
                1440)
    ax.xaxis.set_major_locator(MultipleLocator(step * 60))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{int(x) // 3600}:"
                                                            f"{int(x) % 3600 // 60:02d}"))
    ax.set_xlabel("time since the run started (h:mm)")


def _plain(text: str) -> str:
    """Text from a file as matplotlib shows it verbatim: ``$`` would start mathtext."""
    return text.replace("$", r"\$")


def _thin(samples: list[Sample]) -> list[Sample]:
    """At most about MAX_POINTS samples: of each run of consecutive ones, the one with the
    most memory in use, so a short peak stays in the figure; the last one always."""
    step = -(-len(samples) // MAX_POINTS)
    if step <= 1:
        return samples
    kept = [max(samples[i:i + step], key=lambda s: sum(w.memory for w in s.workers.values()))
            for i in range(0, len(samples), step)]
    return kept if kept[-1] is samples[-1] else [*kept, samples[-1]]


def _phases(ax: Axes, samples: list[Sample], end: float | None, *, legend: bool) -> None:
    """Shade the run's stretches of time by what the driver was doing."""
    if not samples:
        return
    spans = [("starting", 0.0, samples[0].t)]
    for s, after in pairwise(samples):
        if spans[-1][0] == s.phase:  # one patch per stretch, not one per sample
            spans[-1] = (s.phase, spans[-1][1], after.t)
        else:
            spans.append((s.phase, s.t, after.t))
    spans.append(("closing", samples[-1].t, max(end or 0.0, samples[-1].t)))
    shown: set[str] = set()
    for phase, start, stop in spans:
        if phase not in _PHASES or stop <= start:
            continue
        colour, label = _PHASES[phase]
        ax.axvspan(start, stop, color=colour, lw=0, zorder=0,
                   label=label if legend and phase not in shown else None)
        shown.add(phase)


def _workers(ax: Axes, rec: RunRecord, samples: list[Sample]) -> None:
    planned = _planned(rec).get("workers")
    if planned:
        ax.axhline(planned, color="0.45", ls="-.", lw=1, zorder=1, label=f"planned ({planned})")
    waiting = [s for s in samples if s.jobs]
    highest = max([planned or 0, *(len(s.workers) for s in samples),
                   *(len(s.jobs) for s in waiting)])
    for state, style, colour in (("PENDING", ":", "C1"), ("RUNNING", "--", "C2")):
        if waiting:
            ax.step([s.t for s in waiting], [sum(v == state for v in s.jobs.values())
                                             for s in waiting],
                    where="post", ls=style, color=colour, lw=1.5,
                    label=f"SLURM jobs {state.lower()}")
    ax.step([s.t for s in samples], [len(s.workers) for s in samples], where="post", color="C0",
            lw=2, label="workers connected")
    ax.set_ylabel("workers / jobs")
    ax.set_ylim(0, highest * 1.15 + 0.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(**_LEGEND)


def _memory(ax: Axes, rec: RunRecord, samples: list[Sample]) -> None:
    names = sorted({n for s in samples for n in s.workers})
    series = {n: [float(s.workers[n].memory) if n in s.workers else math.nan for s in samples]
              for n in names}
    highest = max((v for values in series.values() for v in values if not math.isnan(v)),
                  default=0.0)
    limit = _limit(rec)
    # A limit far above what was used would flatten every line onto the axis: say it instead.
    drawn = limit if limit and (not highest or limit <= 3 * highest) else None
    size, unit = (1024.0**3, "GiB") if max(highest, drawn or 0) >= 1024**3 else (1024.0**2, "MiB")
    t = [s.t for s in samples]
    if len(names) <= MAX_LINES:
        for n in names:
            ax.plot(t, [v / size for v in series[n]], lw=1.2, label=_plain(n))
    elif names:
        here = [[v / size for v in col if not math.isnan(v)]
                for col in zip(*series.values(), strict=True)]
        ax.fill_between(t, [min(c, default=math.nan) for c in here],
                        [max(c, default=math.nan) for c in here], color="C0", alpha=0.3, lw=0,
                        label=f"min to max of {len(names)} workers")
        ax.plot(t, [statistics.median(c) if c else math.nan for c in here], color="C0", lw=1.2,
                label="median")
    if drawn:
        ax.axhline(drawn / size, color="C3", ls="--", lw=1.2,
                   label=f"limit {units.format_bytes(drawn)}")
    elif limit:  # in the legend only
        ax.plot([], [], color="C3", ls="--", lw=1.2,
                label=f"limit {units.format_bytes(limit)}: far above")
    ax.set_ylabel(f"memory ({unit})")
    ax.set_ylim(0, max(highest, drawn or 0) / size * 1.15 or 1)
    if names or limit:
        ax.legend(**_LEGEND)


def _blocks(ax: Axes, rec: RunRecord, samples: list[Sample]) -> None:
    done = [s for s in samples if s.blocks is not None]
    total = next((s.total for s in reversed(done) if s.total), None)
    if done:
        ax.step([s.t for s in done], [s.blocks or 0 for s in done], where="post", color="C4",
                lw=2, label="blocks written")
    if total:
        ax.axhline(total, color="0.3", ls="-.", lw=1, label=f"all ({total})")
    ax.set_ylabel("blocks")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if done or total:
        ax.legend(**_LEGEND)


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# -- the page -------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(head: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _header(rec: RunRecord) -> str:
    st, s = rec.state, rec.summary
    created = _num(st.get("created"))
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
    data = base64.b64encode(_png(_figure(rec))).decode("ascii")
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
    for s in rec.samples:
        for name, w in s.workers.items():
            row = seen.setdefault(name, ["", 0, 0, None])
            row[0] = w.host or row[0]
            row[1] = max(row[1], w.memory)
            row[2] = w.limit or row[2]
    for key, value in (rec.summary.get("peak_memory") or {}).items():
        _row_of(str(key), seen)[3] = _int(value)
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


def _row_of(key: str, seen: dict[str, list[Any]]) -> list[Any]:
    """The row of ``peak_memory``'s worker ``key``: the timeline names workers, the summary
    may key them by address; one worker on the address's host is that worker."""
    if key in seen:
        return seen[key]
    host = key.rpartition("://")[2].rpartition(":")[0]
    same = [row for row in seen.values() if row[0] == host and row[3] is None]
    if host and len(same) == 1 and sum(r[0] == host for r in seen.values()) == 1:
        return same[0]
    return seen.setdefault(key, [host, 0, same[0][2] if same else 0, None])


def _dask_section(rec: RunRecord) -> str:
    if not (rec.path / DASK_REPORT).is_file():
        return ("<p class=note>dask wrote no performance report: the computation did not "
                "start, or its driver was killed.</p>")
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


def write_png(run_dir: Path, target: Path, *, overwrite: bool = False) -> Path:
    """Write the report's summary figure of a run to ``target`` (a new PNG unless ``overwrite``)."""
    if target.is_dir():
        raise OutputError(f"output {target} is a directory; name a .png file")
    if target.exists() and not overwrite:
        raise OutputError(f"output {target} exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise OutputError(f"output {target}: directory {target.parent} does not exist")
    data = _png(report_figure(run_dir))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"output {target}: cannot write: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return target
