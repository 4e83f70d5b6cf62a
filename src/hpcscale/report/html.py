"""The report page: ``report.html`` from a :class:`~hpcscale.report.record.RunRecord`.

Each section is built on its own; one that fails says so in its place and the
rest of the page is still written. The summary figure
(:mod:`hpcscale.report.figure`, imported only when a figure is drawn:
matplotlib takes a while to import) is embedded as PNG, so the file is one
self-contained page that can be copied anywhere and opened offline.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from hpcscale._meta import __version__
from hpcscale.errors import OutputError
from hpcscale.report.facts import facts, fmt_bytes, fmt_secs, job_times
from hpcscale.report.record import RunRecord, find_run, load, number, peaks, state_of
from hpcscale.rundir import DASK_REPORT_AFTER, RunDir, RunState

__all__ = ["build", "ensure_report", "render", "write_report"]

log = logging.getLogger(__name__)



def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(head: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>"


def _header(rec: RunRecord) -> str:
    st, s = rec.state, rec.summary
    created = st.created
    rows = [
        ("state", state_of(rec)),
        ("site", st.site or s.get("site") or "-"),
        ("output", st.output or s.get("output") or "-"),
        ("host", st.host or "-"),
        ("started", time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(created))
         if created is not None else "-"),
        ("run time", fmt_secs(s.get("seconds"))),
        ("run directory", str(rec.path)),
    ]
    if st.batch_job:
        rows.insert(2, ("batch job", st.batch_job))
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    parts = [f'<dl class="head state-{_e(state_of(rec))}">{items}</dl>']
    if st.error:
        parts.append(f'<p class="error">error: {_e(st.error)}</p>')
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
    from hpcscale.report import figure  # matplotlib: only where a figure is drawn

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
             fmt_secs(t.waited), t.last_state,
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
    for key, value in peaks(rec).items():
        _row_of(key, seen, addresses)[3] = value
    rows = [(name, host or "-", fmt_bytes(high or None), fmt_bytes(peak), fmt_bytes(limit or None),
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
    rd = rec.rundir
    if not rd.dask_report.is_file():
        compute = number(rec.summary.get("compute_s"))
        why = (f"it is written for computations of {DASK_REPORT_AFTER:.0f} s or more, and "
               f"this one took {compute:.1f} s" if compute is not None
               and compute < DASK_REPORT_AFTER and rec.state.state == RunState.DONE
               else "the computation did not start, or its driver was killed")
        return f"<p class=note>dask wrote no performance report: {_e(why)}.</p>"
    name = rd.dask_report.name
    return (f'<p><a href="{quote(name)}">{name}</a>: dask\'s own performance '
            "report of the computation, beside this file: the task stream, worker profiles, "
            "bandwidth between workers, the scheduler's timings. It loads bokeh from "
            "cdn.bokeh.org, so open it where there is network.</p>")


def _files_section(rec: RunRecord) -> str:
    names = [p for p in sorted(rec.path.iterdir()) if p.is_file() and not p.name.startswith(".")]
    logs = rec.rundir.logs
    if logs.is_dir():
        names += sorted(p for p in logs.iterdir() if p.is_file())
    items = "".join(
        f'<li><a href="{_e(quote(p.relative_to(rec.path).as_posix()))}">'
        f"{_e(p.relative_to(rec.path).as_posix())}</a> ({_e(fmt_bytes(p.stat().st_size))})</li>"
        for p in names if p != rec.rundir.report)
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


def build(run_dir: Path) -> Path:
    """Write ``report.html`` into ``run_dir`` (atomically); OSError if it cannot."""
    target = _rundir(run_dir).report
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
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
        return _rundir(run_dir).report


def _rundir(run_dir: Path) -> RunDir:
    return RunDir(Path(run_dir).name, Path(run_dir))


def _stale(rd: RunDir) -> bool:
    """Whether the report is missing or older than a file it is built from."""
    if not rd.report.is_file():
        return True
    made = rd.report.stat().st_mtime
    return any(p.is_file() and p.stat().st_mtime > made for p in rd.report_sources)


def ensure_report(run: str) -> tuple[RunDir, Path]:
    """The report of a run (see :func:`find_run`), rebuilt when older than the run's files."""
    rd = find_run(run)
    if not _stale(rd):
        return rd, rd.report.absolute()
    try:
        return rd, build(rd.path).absolute()
    except OSError as exc:
        raise OutputError(f"cannot write {rd.report}: {exc.strerror or exc}") from exc
