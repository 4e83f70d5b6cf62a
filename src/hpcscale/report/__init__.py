"""The run report: ``report.html`` in a run's directory, the plan beside what happened.

:func:`write_report` builds it from the files every run leaves there
(``state.json``, ``plan.json`` or an older run's ``plan.txt``, ``summary.json``,
``timeline.jsonl``, dask's ``dask-report.html``). Any of them may be missing or
cut short (a failed or cancelled run, a driver killed mid-line): the report
then says what is missing and leaves out what it cannot show; it never raises.

The modules, each importing only those before it: :mod:`~hpcscale.report.record`
reads a run directory, :mod:`~hpcscale.report.facts` says what its numbers
mean, :mod:`~hpcscale.report.html` writes the page and
:mod:`~hpcscale.report.figure` draws the summary figure (the only one that
imports matplotlib; imported only where a figure is drawn).
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from hpcscale.errors import OutputError
from hpcscale.io.output import check_not_input
from hpcscale.report.html import ensure_report, write_report
from hpcscale.report.record import Planned, RunRecord, find_run, load
from hpcscale.rundir import RunDir

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Planned", "RunRecord", "check_png", "ensure_report", "find_run", "load",
           "report_figure", "write_png", "write_report"]


def report_figure(run_dir: Path) -> Figure:
    """The report's summary figure of a run: workers, memory and blocks over time."""
    from hpcscale.report import figure  # matplotlib: only where a figure is drawn

    return figure.draw(load(run_dir))


def check_png(run_dir: Path, target: Path, *, overwrite: bool = False) -> None:
    """Refuse, in one line, a ``--png`` path that must not be written: a directory, an
    existing file (unless ``overwrite``), a missing folder, or a path in the run's input."""
    try:
        recorded = tomllib.loads(RunDir(run_dir.name, run_dir).jobspec.read_text("utf-8"))
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
    from hpcscale.report import figure

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
