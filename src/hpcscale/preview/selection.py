"""What one preview panel shows: a selection of an opened array, computed with dask.

:func:`select` picks from an opened array what one panel shows (``DIM=INDEX``
slices, max projections, and the middle index of every other dim but the last
two) and computes only that. :func:`plan_plane` is its first half, which reads
nothing: the command plans every panel (and compares their shapes) before it
reads any. Pure: no files written, no matplotlib.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from hpcscale.errors import HpcscaleError, InputError, UsageError
from hpcscale.io.inputs import InputArray, open_input

__all__ = ["MAX_PIXELS", "Plane", "PlannedPlane", "format_value", "parse_slices", "plan_plane",
           "select"]

# Per shown dim: a PNG a few hundred pixels wide shows no more, and a huge
# plane (a mosaic, a long series) is read chunk by chunk and thinned instead
# of being held in memory whole.
MAX_PIXELS = 2048


@dataclass(frozen=True)
class _PlaneFields:
    """What a panel shows apart from its values: see :class:`Plane`."""

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


@dataclass(frozen=True)
class Plane(_PlaneFields):
    """What one panel shows: computed values (0-, 1- or 2-D) and the words for its axes.

    ``dims``, ``shape`` (before thinning) and ``axis_labels`` have one entry per
    dim of ``values``; ``coords`` holds coordinate values of those dims that
    have them, thinned like ``values`` (every ``steps[i]``-th). ``selection`` maps
    each sliced dim to its index, ``projected`` lists the max-projected dims.
    """

    values: np.ndarray[Any, Any]

    def summary(self) -> dict[str, Any]:
        """JSON-ready: path, var, dims, shape, selection, max, steps."""
        return {"path": self.path, "var": self.var, "dims": list(self.dims),
                "shape": list(self.shape), "selection": self.selection,
                "max": list(self.projected), "steps": list(self.steps)}


@dataclass(frozen=True)
class PlannedPlane(_PlaneFields):
    """A :class:`Plane` before its values are read: ``lazy`` selects them."""

    lazy: da.Array

    def read(self) -> Plane:
        """Read the planned values (the only read) and make the Plane."""
        values = _compute(self.lazy, self.path)
        if values.dtype == np.bool_:
            values = values.astype(np.uint8)
        elif values.dtype == np.float16:
            values = values.astype(np.float32)
        return Plane(values=values, dims=self.dims, shape=self.shape, coords=self.coords,
                     axis_labels=self.axis_labels, value_label=self.value_label,
                     units=self.units, title=self.title, selection=self.selection,
                     projected=self.projected, steps=self.steps, path=self.path, var=self.var)


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
    return plan_plane(arr, dict(slices or {}), tuple(max_dims), max_pixels).read()


def plan_plane(arr: InputArray, slices: dict[str, int], max_dims: tuple[str, ...],
               max_pixels: int = MAX_PIXELS) -> PlannedPlane:
    """The lazy selection of :func:`select` and the Plane's other fields; reads nothing."""
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
    return PlannedPlane(
        lazy=lazy, dims=shown, shape=shape,
        coords={d: arr.coords[d][:: steps[d]] for d in shown if d in arr.coords},
        axis_labels=axis_labels, value_label=value_label, units=value_units,
        title=", ".join([head, *words]), selection=picked, projected=max_dims,
        steps=tuple(steps.values()), path=arr.path, var=arr.var,
    )


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

