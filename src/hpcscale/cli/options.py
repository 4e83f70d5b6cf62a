"""Options several commands share, each declared once (type, flags, help)."""

from __future__ import annotations

from typing import Annotated

import typer

from hpcscale.errors import UsageError

Site = Annotated[str | None, typer.Option("--site", "-s", help="Site profile name "
                                          "(default: the spec's, $HPCSCALE_SITE, or local).")]
Jobs = Annotated[str | None, typer.Option("--jobs", "-j", help="Number of jobs, or 'auto'.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan; submit nothing.")]
Overwrite = Annotated[bool | None, typer.Option(
    "--overwrite/--no-overwrite", help="Replace an existing output written by hpcscale.")]


def parse_jobs(value: str | None) -> int | str | None:
    """--jobs: a whole number >= 1, or 'auto'."""
    if value is None or value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"--jobs {value!r}: expected a whole number >= 1 or 'auto'")
    return n
