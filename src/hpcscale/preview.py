"""Quick looks at an input or an output: a slice, a max projection or a histogram, as a PNG.

:func:`select` is the pure part: from an opened array it picks what one panel
shows (``DIM=INDEX`` slices, max projections, and the middle index of every
other dim but the last two) and computes only that with dask. :func:`preview`
checks the options and the output path, selects from one or two files
(``compare``) and draws them with matplotlib's Agg canvas: no display and no
pyplot state, so it works on a login node and inside a batch job.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from hpcscale.errors import HpcscaleError, InputError, OutputError, UsageError
from hpcscale.io.inputs import InputArray, open_input
from hpcscale.io.output import check_not_input

__all__ = ["DEFAULT_BINS", "MAX_PIXELS", "Plane", "Written", "default_output", "format_value",
           "parse_slices", "preview", "select"]

# Per shown dim: a PNG a few hundred pixels wide shows no more, and a huge
# plane (a mosaic, a long series) is read chunk by chunk and thinned instead
# of being held in memory whole.
MAX_PIXELS = 2048
DEFAULT_BINS = 50
_GLOB = "*?["


@dataclass(frozen=True)
class Plane:
    """What one panel shows: computed values (0-, 1- or 2-D) and the words for its axes.

    ``dims``, ``shape`` (before thinning) and ``axis_labels`` have one entry per
    dim of ``values``; ``coords`` holds coordinate values of those dims that
    have them, thinned like ``values`` (every ``steps[i]``-th). ``selection`` maps
    each sliced dim to its index, ``projected`` lists the max-projected dims.
    """

    values: np.ndarray[Any, Any]
    dims: tuple[str, ...]
    shape: tuple[int, ...]
    coords: dict[str, np.ndarray[Any, Any]]
    axis_labels: tuple[str, ...]
    value_label: str
    units: str | None
    title: str
    selection: dict[str, int]
    projected: tuple[str, ...]
    steps: tuple[int, ...]
    path: str
    var: str | None

    def summary(self) -> dict[str, Any]:
        """JSON-ready: path, var, dims, shape, selection, max, steps."""
        return {"path": self.path, "var": self.var, "dims": list(self.dims),
                "shape": list(self.shape), "selection": self.selection,
                "max": list(self.projected), "steps": list(self.steps)}


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


def parse_slices(texts: Sequence[str]) -> dict[str, int]:
    """``["time=5", "z=-1"]`` -> ``{"time": 5, "z": -1}``; ``UsageError`` for a bad form."""
    picked: dict[str, int] = {}
    for text in texts:
        dim, sep, index = text.rpartition("=")
        try:
            value = int(index)
        except ValueError:
            value = None
        if not sep or not dim or value is None:
            raise UsageError(f"--slice {text!r}: expected DIM=INDEX with a whole-number "
                             "index, e.g. --slice time=5")
        if dim in picked:
            raise UsageError(f"--slice {dim} is given twice ({dim}={picked[dim]} and {text})")
        picked[dim] = value
    return picked


def default_output(path: str) -> Path:
    """``<input stem>-preview.png`` in the current directory (a glob: named after its folder)."""
    text = os.path.expanduser(path).rstrip("/") or "/"
    p = Path(text)
    if any(c in text for c in _GLOB):
        p = p.parent
    if p.name in ("", ".", ".."):
        p = p.resolve()
    return Path(f"{Path(p.name).stem or 'input'}-preview.png")


def select(arr: InputArray, slices: Mapping[str, int] | None = None,
           max_dims: Sequence[str] = (), *, max_pixels: int = MAX_PIXELS) -> Plane:
    """The values one panel shows, computed, with labels.

    ``arr`` at ``slices`` (dim -> index; negative counts from the end),
    max-projected along ``max_dims`` (NaN ignored), and at the middle index of
    every other dim but the last two that remain. Only those values are read;
    shown dims longer than ``max_pixels`` keep every n-th value (``steps``).
    bool comes back as uint8 and float16 as float32. ``UsageError`` names an
    unknown dim or an index out of range with the allowed range.
    """
    return _finish(*_plan(arr, dict(slices or {}), tuple(max_dims), max_pixels))


def _finish(lazy: da.Array, fields: dict[str, Any]) -> Plane:
    """Read the planned values (the only read) and make the Plane."""
    values = _compute(lazy, fields["path"])
    if values.dtype == np.bool_:
        values = values.astype(np.uint8)
    elif values.dtype == np.float16:
        values = values.astype(np.float32)
    return Plane(values=values, **fields)


def _plan(arr: InputArray, slices: dict[str, int], max_dims: tuple[str, ...],
          max_pixels: int) -> tuple[da.Array, dict[str, Any]]:
    """The lazy selection of :func:`select` and the Plane's other fields."""
    name = Path(arr.path).name
    size = dict(zip(arr.dims, arr.shape, strict=True))
    known = ", ".join(arr.dims) or "none: it is a single value"
    if arr.dtype.kind not in "biuf":
        raise InputError(f"input {arr.path}: preview shows numbers; {arr.var or 'the array'} "
                         f"holds {arr.dtype} values")
    if 0 in arr.shape:
        raise InputError(f"input {arr.path}: {arr.var or 'the array'} is empty "
                         f"(shape {arr.shape}); there is nothing to show")
    for dim, index in slices.items():
        if dim not in size:
            raise UsageError(f"--slice {dim}={index}: {name} has no dim {dim} (dims: {known})")
        n = size[dim]
        if not -n <= index < n:
            raise UsageError(f"--slice {dim}={index}: index out of range; {dim} has {n} values, "
                             f"use 0 to {n - 1} (or -{n} to -1 from the end)")
    for dim in max_dims:
        if dim not in size:
            raise UsageError(f"--max {dim}: {name} has no dim {dim} (dims: {known})")
        if dim in slices:
            raise UsageError(f"--max {dim} and --slice {dim}={slices[dim]}: choose one")
    if len(set(max_dims)) < len(max_dims):
        raise UsageError(f"--max {' '.join(max_dims)}: a dim is given twice")
    rest = [d for d in arr.dims if d not in slices and d not in max_dims]
    picked = {d: slices[d] % size[d] if d in slices else size[d] // 2
              for d in arr.dims if d in slices or d in rest[:-2]}
    shown = tuple(rest[-2:])
    shape = tuple(size[d] for d in shown)
    steps = dict(zip(shown, (math.ceil(n / max_pixels) for n in shape), strict=True))
    where = tuple(picked[d] if d in picked else slice(None, None, steps.get(d))
                  for d in arr.dims)
    lazy = arr.data[where]
    kept = [d for d in arr.dims if d not in picked]
    if max_dims:
        lazy = da.nanmax(lazy, axis=tuple(kept.index(d) for d in max_dims))

    counts = "bin" in arr.dims and arr.dtype.kind in "iu"  # an hpcscale histogram output
    units = _text(arr.attrs.get("units"))
    var_name = arr.var.rpartition("/")[2] if arr.var else "value"
    value_units = "count" if counts else units
    value_label = "count" if counts else _with_units(var_name, units)
    axis_labels = tuple(_with_units(d, units if counts and d == "bin" else _coord_units(arr, d))
                        for d in shown)
    words = [f"{d}={i}" + (f" ({format_value(arr.coords[d][i])})" if d in arr.coords else "")
             for d, i in picked.items()]
    words += [f"max over {d}" for d in max_dims]
    words += [f"every {_ordinal(n)} value along {d}" for d, n in steps.items() if n > 1]
    head = f"{name}: {var_name}" if arr.var else name
    return lazy, {
        "dims": shown, "shape": shape,
        "coords": {d: arr.coords[d][:: steps[d]] for d in shown if d in arr.coords},
        "axis_labels": axis_labels, "value_label": value_label, "units": value_units,
        "title": ", ".join([head, *words]), "selection": picked, "projected": max_dims,
        "steps": tuple(steps.values()), "path": arr.path, "var": arr.var,
    }


def _compute(lazy: da.Array, path: str) -> np.ndarray[Any, Any]:
    # nanmax warns for an all-NaN column and comes back NaN there, which is
    # what the picture shows; the warning would only repeat that on stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            return np.asarray(lazy.compute(scheduler="threads"))  # type: ignore[no-untyped-call]
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"input {path}: cannot read: {' '.join(str(exc).split())}") from exc


def _coord_units(arr: InputArray, dim: str) -> str | None:
    """The ``units`` of ``dim``'s coordinate variable, where the format has them."""
    if dim not in arr.coords or arr.kind not in ("zarr", "netcdf") or arr.var is None:
        return None
    parent = arr.var.rpartition("/")[0]
    name = f"{parent}/{dim}" if parent else dim
    if name == arr.var:
        return _text(arr.attrs.get("units"))
    try:
        return _text(open_input(arr.path, name).attrs.get("units"))
    except HpcscaleError:
        return None


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and not value) else str(value)


def _ordinal(n: int) -> str:
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _with_units(label: str, units: str | None) -> str:
    return f"{label} [{units}]" if units else label


def format_value(value: Any) -> str:
    if isinstance(value, np.datetime64):
        text = str(np.datetime_as_string(value, unit="s"))
        return text.removesuffix("T00:00:00")
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return str(value)


# -- the command ---------------------------------------------------------------------------------


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
    plans = [_plan(a, *_own(arrays, a, picked, tuple(max_dims)), MAX_PIXELS) for a in arrays]
    if len(plans) == 2 and plans[0][1]["shape"] != plans[1][1]["shape"]:
        (_, a), (_, b) = plans
        raise UsageError(
            f"--compare: {_shows(a)} but {_shows(b)} after the selection; "
            "choose --slice/--max so that both give the same shape")
    check_not_input(target, [path, *([compare] if compare is not None else [])])
    _check_output(target, overwrite)
    planes = tuple(_finish(lazy, fields) for lazy, fields in plans)
    from hpcscale.preview_draw import draw  # matplotlib: imported only to draw

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

    With one file, all of it (unknown dims are refused by ``_plan``). When
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


def _shows(plane: dict[str, Any]) -> str:
    name = Path(plane["path"]).name
    dims = ", ".join(plane["dims"])
    return f"{name} shows shape {tuple(plane['shape'])} ({dims or 'a single value'})"


def _check_output(target: Path, overwrite: bool) -> None:
    parent = target.parent
    if not parent.is_dir():
        raise OutputError(f"output {target}: directory {parent} does not exist")
    if target.is_dir():
        raise OutputError(f"output {target} is a directory; name a .png file")
    if target.exists() and not overwrite:
        raise OutputError(f"output {target} exists; pass --overwrite to replace it")


# -- drawing --------------------------------------------------------------------------------------
