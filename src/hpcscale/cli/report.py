"""The report command: the path of a run's report.html; opens it, or writes its figure."""

from __future__ import annotations

import os
import sys
import webbrowser
from pathlib import Path
from typing import Annotated

import typer

from hpcscale import report as library
from hpcscale.cli.render import result, say


def _display() -> bool:
    """Whether a browser can show a page here (not on a login node over plain ssh)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def report(
    run_id: Annotated[str, typer.Argument(
        help="Run id (see `hpcscale runs`), a unique prefix of one, or `last`.")],
    open_: Annotated[bool, typer.Option(
        "--open", help="Open the report in a web browser (where there is a display).")] = False,
    png: Annotated[Path | None, typer.Option(
        "--png", help="Also write the report's summary figure (workers, memory and blocks "
        "over time) to this PNG.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing --png file.")] = False,
) -> None:
    """Print the path of a run's report.html (the plan beside what happened), built if needed.

    It is rebuilt when the run's files are newer than it. --open shows it in a
    browser; --png writes its summary figure too.
    Example: hpcscale report last --open
    """
    if png is not None:  # before the report is (re)built: a refused command writes nothing
        library.check_png(library.find_run(run_id).path, png, overwrite=overwrite)
    rd, path = library.ensure_report(run_id)
    data: dict[str, str] = {"run": rd.run_id, "report": str(path)}
    if png is not None:
        data["png"] = str(library.write_png(rd.path, png, overwrite=overwrite))
        say(f"wrote {png}")
    if open_:
        if not _display():
            say("no display here (DISPLAY is not set): copy the report to your computer, "
                f"e.g. scp {os.uname().nodename}:{path} .")
        elif not webbrowser.open(path.as_uri()):
            say("no web browser found to open it")
    result(str(path), data)


def register(app: typer.Typer) -> None:
    app.command()(report)
