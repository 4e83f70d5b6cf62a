"""Quick looks at an input or an output: a slice, a max projection or a histogram, as a PNG.

:func:`preview` checks the options and the output path, selects from one or
two files (``compare``) with :mod:`hpcscale.preview.selection` and draws them with
:mod:`hpcscale.preview.draw` (matplotlib's Agg canvas: no display and no
pyplot state, so it works on a login node and inside a batch job; imported
only to draw).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcscale.errors import InputError, OutputError, UsageError
from hpcscale.io.inputs import InputArray, open_input
from hpcscale.io.output import check_not_input
from hpcscale.preview.selection import (
    MAX_PIXELS,
    Plane,
    PlannedPlane,
    format_value,
    parse_slices,
    plan_plane,
    select,
)

__all__ = ["DEFAULT_BINS", "MAX_PIXELS", "Plane", "PlannedPlane", "Written", "default_output",
           "format_value", "parse_slices", "preview", "select"]

DEFAULT_BINS = 50
_GLOB = "*?["


@dataclass(frozen=True)
class Written:
    """A PNG written by :func:`preview`, with the planes it shows."""

    path: Path
    planes: tuple[Plane, ...]
    histogram: bool
    shared_scale: bool

    def summary(self) -> dict[str, Any]:
        first = self.planes[0]
        return {"path": str(self.path), "selection": first.selection,
                "max": list(first.projected), "histogram": self.histogram,
                "shared_scale": self.shared_scale, "panels": [p.summary() for p in self.planes]}


def default_output(path: str) -> Path:
    """``<input stem>-preview.png`` in the current directory (a glob: named after its folder)."""
    text = os.path.expanduser(path).rstrip("/") or "/"
    p = Path(text)
    if any(c in text for c in _GLOB):
        p = p.parent
    if p.name in ("", ".", ".."):
        p = p.resolve()
    return Path(f"{Path(p.name).stem or 'input'}-preview.png")


def preview(path: str, *, var: str | None = None, slices: Sequence[str] = (),
            max_dims: Sequence[str] = (), histogram: bool = False, bins: int | None = None,
            compare: str | None = None, output: Path | None = None,
            overwrite: bool = False) -> Written:
    """Write a PNG of ``path`` (and ``compare`` beside it, the same selection) and say what.

    ``slices`` are ``DIM=INDEX`` texts; ``var`` picks the array of ``path``
    and of ``compare`` where it has one of that name (else its only array).
    With ``histogram`` the panels are histograms of the selected values
    (``bins``, default 50). ``output`` defaults to :func:`default_output`; an
    existing file is replaced only with ``overwrite``. Every mistake is a
    one-line ``HpcscaleError`` raised before anything is written.
    """
    if bins is not None and not histogram:
        raise UsageError("--bins applies only with --histogram")
    if bins is not None and bins < 1:
        raise UsageError(f"--bins {bins}: expected a whole number >= 1")
    picked = parse_slices(slices)
    target = output if output is not None else default_output(path)
    if target.suffix.lower() != ".png":
        raise UsageError(f"--output {target}: preview writes PNG images; "
                         f"name the file *.png (e.g. {target.with_suffix('.png').name})")
    arrays = [open_input(path, var)]
    if compare is not None:
        arrays.append(_open_other(compare, var))
    plans = [plan_plane(a, *_own(arrays, a, picked, tuple(max_dims))) for a in arrays]
    if len(plans) == 2 and plans[0].shape != plans[1].shape:
        a, b = plans
        raise UsageError(
            f"--compare: {_shows(a)} but {_shows(b)} after the selection; "
            "choose --slice/--max so that both give the same shape")
    check_not_input(target, [path, *([compare] if compare is not None else [])])
    _check_output(target, overwrite)
    planes = tuple(p.read() for p in plans)
    from hpcscale.preview.draw import draw  # matplotlib: imported only to draw

    shared = draw(planes, target, (bins or DEFAULT_BINS) if histogram else None, overwrite)
    return Written(target, planes, histogram, shared)


def _open_other(path: str, var: str | None) -> InputArray:
    try:
        return open_input(path, var)
    except InputError as first:
        if var is None:
            raise
        try:
            return open_input(path, None)
        except InputError:
            raise first from None


def _own(arrays: list[InputArray], arr: InputArray, slices: dict[str, int],
         max_dims: tuple[str, ...]) -> tuple[dict[str, int], tuple[str, ...]]:
    """The part of the selection that applies to ``arr``.

    With one file, all of it (unknown dims are refused by ``plan_plane``). When
    comparing, a dim only one file has (time, before a mean over time) is
    applied to that file; a dim neither has is refused.
    """
    if len(arrays) == 1:
        return slices, max_dims
    for dim in [*slices, *max_dims]:
        if not any(dim in a.dims for a in arrays):
            option = f"--slice {dim}={slices[dim]}" if dim in slices else f"--max {dim}"
            listed = "; ".join(f"{Path(a.path).name}: {', '.join(a.dims) or 'none'}"
                               for a in arrays)
            raise UsageError(f"{option}: neither file has a dim {dim} (dims of {listed})")
    return ({d: i for d, i in slices.items() if d in arr.dims},
            tuple(d for d in max_dims if d in arr.dims))


def _shows(plane: PlannedPlane) -> str:
    name = Path(plane.path).name
    dims = ", ".join(plane.dims)
    return f"{name} shows shape {plane.shape} ({dims or 'a single value'})"


def _check_output(target: Path, overwrite: bool) -> None:
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(f"output {target}: directory {parent} does not exist")
    if target.is_dir():
        raise OutputError(f"output {target} is a directory; name a .png file")
    if target.exists() and not overwrite:
        raise OutputError(f"output {target} exists; pass --overwrite to replace it")
