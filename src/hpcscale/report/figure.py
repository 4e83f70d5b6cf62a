"""The run report's summary figure: workers, memory per worker and blocks written over time.

Drawn on matplotlib's Agg canvas (no display, no pyplot state). Only this
module of the report imports matplotlib, and the rest of :mod:`hpcscale.report`
imports it only where a figure is drawn, so reading a run (or starting the
command line) does not pay for matplotlib.
"""

from __future__ import annotations

import io
import math
import statistics
from itertools import pairwise
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator

from hpcscale import units
from hpcscale.report.record import RunRecord, Sample, integer, memory_limit, number, state_of

__all__ = ["DPI", "FIGSIZE", "MAX_LINES", "MAX_POINTS", "draw", "png"]

FIGSIZE, DPI = (10.0, 8.0), 100  # the summary figure: 1000 x 800 pixels
MAX_POINTS = 1500  # samples drawn per line: a longer timeline is thinned, its peaks kept
MAX_LINES = 12  # workers drawn one line each; more are drawn as a min-median-max band
# The shading of the figures: what the driver was doing.
_PHASES = {"starting": ("#ececec", "starting the cluster"),
           "waiting": ("#f6e3c3", "waiting for workers"),
           "computing": ("#d6e6f5", "computing"),
           "closing": ("#dcdcdc", "closing the cluster")}
_LEGEND: dict[str, Any] = {"loc": "upper left", "bbox_to_anchor": (1.01, 1.0), "fontsize": 8,
                           "frameon": False}


def draw(rec: RunRecord) -> Figure:
    """The summary figure of a run read by :func:`hpcscale.report.load`."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    # Fixed margins: constrained layout would double the time to draw.
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={
        "left": 0.07, "right": 0.78, "top": 0.92, "bottom": 0.07, "hspace": 0.3})
    fig.suptitle(_plain(f"run {rec.run_id}: {state_of(rec)} on site "
                        f"{rec.state.site or rec.summary.get('site') or '?'}"),
                 fontsize=12)
    samples = _thin(rec.samples)
    end = number(rec.summary.get("seconds"))
    resumed = integer(rec.summary.get("blocks_resumed")) or 0
    titles = ("workers connected over time", "memory per worker (of its process, as dask "
              "reports it)", "output blocks written"
              + (f" ({resumed} resumed from an earlier run)" if resumed else ""))
    for ax, panel, title in zip(axes, (_workers, _memory, _blocks), titles, strict=True):
        _phases(ax, samples, end, legend=ax is axes[0])
        if samples:
            panel(ax, rec, samples)
        else:
            ax.set_yticks([])
        ax.set_title(title, fontsize=10, y=1.0)  # fixed: placing it by the ticks is slow
        ax.grid(alpha=0.3)
    if not samples:
        axes[1].text(0.5, 0.5, "no timeline samples in the run directory: the run ended "
                     "before its cluster started, or its driver was killed",
                     ha="center", va="center", transform=axes[1].transAxes, color="0.4")
    _time_axis(axes[-1], max([end or 0.0, *(s.t for s in samples)]))
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


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
    planned = rec.plan.workers
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
    limit = memory_limit(rec)
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
