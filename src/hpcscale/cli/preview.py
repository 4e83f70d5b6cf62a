"""The preview command: a PNG of a slice, a max projection or a histogram of any input or output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpcscale import preview as library
from hpcscale.cli.render import result


def preview(
    path: Annotated[str, typer.Argument(
        help="Input or output: Zarr, NetCDF, TIFF, image glob or .npy.")],
    compare: Annotated[str | None, typer.Option(
        "--compare", help="Show this file beside PATH with the same selection "
        "(e.g. the output of a filter).")] = None,
    var: Annotated[str | None, typer.Option(
        help="Array (variable) inside PATH; also in OTHER where it has one of that name.")]
    = None,
    slices: Annotated[list[str] | None, typer.Option(
        "--slice", help="DIM=INDEX, e.g. time=5; repeat for several (default: the middle "
        "index of every dim but the last two).")] = None,
    max_dims: Annotated[list[str] | None, typer.Option(
        "--max", help="Max projection along DIM; repeat for several.")] = None,
    histogram: Annotated[bool, typer.Option(
        "--histogram", help="A histogram of the selected values instead of the values.")]
    = False,
    bins: Annotated[int | None, typer.Option(
        help=f"Histogram bins (--histogram; default {library.DEFAULT_BINS}).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="PNG to write (default: <input stem>-preview.png here).")]
    = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing PNG.")] = False,
) -> None:
    """Render a slice, a max projection or a histogram of an input or output to a PNG.

    Only the selected values are read. With --compare, two files side by side
    (before and after a filter), on one colour scale when their values are
    comparable.
    Example: hpcscale preview hpcscale-demo/climate.zarr --slice time=5
    """
    written = library.preview(
        path, var=var, slices=slices or [], max_dims=max_dims or [], histogram=histogram,
        bins=bins, compare=compare, output=output, overwrite=overwrite)
    shown = "; ".join(p.title for p in written.planes)
    result(f"wrote {written.path} ({shown})", written.summary())


def register(app: typer.Typer) -> None:
    app.command()(preview)
