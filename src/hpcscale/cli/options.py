"""Options several commands share, each declared once (type, flags, help)."""

from __future__ import annotations

import tomllib
from typing import Annotated, Any

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


def parse_kwargs(values: list[str] | None) -> dict[str, Any]:
    """``--kwarg NAME=VALUE`` (repeated): each value read as a TOML value, else as text."""
    found: dict[str, Any] = {}
    for item in values or []:
        key, sep, text = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--kwarg {item!r}: expected NAME=VALUE, e.g. --kwarg sigma=3 "
                             "or --kwarg mode=nearest")
        found[key] = parse_value(text)
    return found


def parse_value(text: str) -> Any:
    """A TOML value (which JSON's numbers, true/false, strings and lists also are), else the
    text: 3 -> 3, 2.5 -> 2.5, true -> True, [1, 2] -> [1, 2], "3" -> '3', nearest -> 'nearest'."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
