"""Drawing previews with matplotlib (Agg, no display): images with colour bars,
line plots, histograms, side by side. Split from :mod:`hpcscale.preview` so
that matplotlib, slow to import, loads only when a PNG is drawn."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from hpcscale.errors import OutputError
from hpcscale.preview.selection import format_value

if TYPE_CHECKING:
    from hpcscale.preview.selection import Plane


def draw(planes: Sequence[Plane], target: Path, bins: int | None, overwrite: bool) -> bool:
    """Draw the planes side by side into ``target``; True when they share one scale."""
    # A panel is about 5 inches wide; an image drawn to scale sets the height
    # (plus room for the title and the axis labels), so a wide map gets no
    # empty band above and below it.
    images = bins is None and planes[0].values.ndim == 2
    ratio = max(_ratio(p) or 0.0 for p in planes) if images else 0.0
    width = 4.2 if len(planes) > 1 else 5.2
    height = min(max(1.4 + width * ratio, 3.0), 8.0) if ratio else 5.0
    fig = Figure(figsize=(6.0 * len(planes) if len(planes) > 1 else 7.0, height), dpi=100,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, len(planes), squeeze=False)[0])
    shared = len(planes) > 1 and _comparable(planes)
    limits = _limits([p.values for p in planes]) if shared else None
    if bins is not None:
        for ax, plane in zip(axes, planes, strict=True):
            _histogram(ax, plane, bins, limits)
    elif images:
        drawn = [_image(ax, p, limits or _limits([p.values]))
                 for ax, p in zip(axes, planes, strict=True)]
        if shared:
            fig.colorbar(drawn[0], ax=axes, label=planes[0].value_label)
        else:
            for ax, image, plane in zip(axes, drawn, planes, strict=True):
                fig.colorbar(image, ax=ax, label=plane.value_label)
    elif planes[0].values.ndim == 1:
        for ax, plane in zip(axes, planes, strict=True):
            _line(ax, plane, limits)
    else:
        for ax, plane in zip(axes, planes, strict=True):
            _value(ax, plane)
    for ax, plane in zip(axes, planes, strict=True):
        ax.set_title(plane.title + (f", {bins} bins" if bins is not None else ""), fontsize=10)
    _save(fig, target, overwrite)
    return shared


def _save(fig: Figure, target: Path, overwrite: bool) -> None:
    # Written beside the target and renamed: a failed or interrupted write
    # leaves no half PNG, and an existing file is never truncated first.
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png")
        if target.exists() and not overwrite:
            raise OutputError(f"output {target} exists; pass --overwrite to replace it")
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"output {target}: cannot write: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _finite(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    flat = values.ravel()
    return flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat


def _limits(all_values: Sequence[np.ndarray[Any, Any]]) -> tuple[float, float]:
    """The finite min and max over ``all_values``, widened when they are equal."""
    found = [v for v in (_finite(a) for a in all_values) if v.size]
    if not found:
        return 0.0, 1.0
    lo = min(float(v.min()) for v in found)
    hi = max(float(v.max()) for v in found)
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def _comparable(planes: Sequence[Plane]) -> bool:
    """Same units, and value ranges overlapping by at least half the larger one.

    Input and filtered output share a colour scale; a mean and a standard
    deviation (both degC) do not, or the smaller would be one flat colour.
    """
    if len({p.units for p in planes}) > 1:
        return False
    ranges = [_limits([p.values]) for p in planes]
    overlap = min(hi for _, hi in ranges) - max(lo for lo, _ in ranges)
    return overlap >= 0.5 * max(hi - lo for lo, hi in ranges)


def _edges(plane: Plane, axis: int) -> tuple[float, float, bool]:
    """Where the first and last values' cells end along ``axis``, and whether in coordinates.

    Evenly spaced numeric coordinates give the axis their values; other dims
    are in (unthinned) index units, labelled with their coordinates if any.
    """
    dim, n = plane.dims[axis], plane.values.shape[axis]
    c = plane.coords.get(dim)
    if c is not None and n > 1 and c.dtype.kind in "iuf":
        c = c.astype(np.float64)
        d = np.diff(c)
        if np.all(np.isfinite(c)) and d[0] != 0 and np.allclose(d, d[0], rtol=1e-3, atol=0):
            return float(c[0] - d[0] / 2), float(c[-1] + d[0] / 2), True
    step = plane.steps[axis]
    return -0.5 * step, (n - 0.5) * step, False


def _ratio(plane: Plane) -> float | None:
    """Height over width of an image drawn to scale, or None when it is stretched to fit.

    To scale when both axes are coordinates or both are indices, and the image
    is at most 4 times longer one way than the other.
    """
    (y0, y1, y_coord), (x0, x1, x_coord) = _edges(plane, 0), _edges(plane, 1)
    height, width = abs(y1 - y0), abs(x1 - x0)
    if y_coord != x_coord or max(height, width) > 4 * min(height, width):
        return None
    return height / width


def _image(ax: Axes, plane: Plane, limits: tuple[float, float]) -> Any:
    (y0, y1, y_coord), (x0, x1, x_coord) = _edges(plane, 0), _edges(plane, 1)
    aspect: Literal["equal", "auto"] = "auto" if _ratio(plane) is None else "equal"
    image = ax.imshow(plane.values, origin="upper", extent=(x0, x1, y1, y0), aspect=aspect,
                      vmin=limits[0], vmax=limits[1], cmap="viridis", interpolation="nearest")
    # Coordinates increase to the right and upwards (north up); plain indices
    # keep the image convention of row 0 at the top.
    ax.set_xlim(min(x0, x1), max(x0, x1))
    if y_coord:
        ax.set_ylim(min(y0, y1), max(y0, y1))
    for axis, is_coord, which in ((0, y_coord, ax.yaxis), (1, x_coord, ax.xaxis)):
        if not is_coord:
            which.set_major_locator(MaxNLocator(nbins=5, integer=True))
            coords = plane.coords.get(plane.dims[axis])
            if coords is not None:
                which.set_major_formatter(_index_formatter(coords, plane.steps[axis]))
    ax.set_ylabel(plane.axis_labels[0])
    ax.set_xlabel(plane.axis_labels[1])
    return image


def _index_formatter(coords: np.ndarray[Any, Any], step: int) -> FuncFormatter:
    def label(x: float, _pos: int | None) -> str:
        i = round(x / step)
        return format_value(coords[i]) if 0 <= i < len(coords) else ""

    return FuncFormatter(label)


def _line(ax: Axes, plane: Plane, limits: tuple[float, float] | None) -> None:
    dim, values = plane.dims[0], plane.values
    coords = plane.coords.get(dim)
    x = coords if coords is not None else np.arange(len(values)) * plane.steps[0]
    if dim == "bin" and plane.units == "count" and x.dtype.kind in "iuf":
        width = float(np.diff(x).min()) if len(x) > 1 else 1.0
        ax.bar(x, values, width=width, color="tab:blue")
    else:
        ax.plot(x, values, color="tab:blue")
    if x.dtype.kind == "M":
        ax.tick_params(axis="x", labelrotation=30)
    if limits is not None:
        pad = 0.05 * (limits[1] - limits[0])
        ax.set_ylim(limits[0] - pad, limits[1] + pad)
    ax.set_xlabel(plane.axis_labels[0])
    ax.set_ylabel(plane.value_label)


def _value(ax: Axes, plane: Plane) -> None:
    value = plane.values.item()
    text = format_value(float(value)) if plane.values.dtype.kind == "f" else str(value)
    units = plane.units if plane.units != "count" else None
    if units:
        text = f"{plane.value_label.removesuffix(f' [{units}]')} = {text} {units}"
    else:
        text = f"{plane.value_label} = {text}"
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=16, transform=ax.transAxes)
    ax.set_axis_off()


def _histogram(ax: Axes, plane: Plane, bins: int, limits: tuple[float, float] | None) -> None:
    finite = _finite(plane.values).astype(np.float64)
    lo, hi = limits or _limits([finite])
    counts, edges = np.histogram(finite, bins=bins, range=(lo, hi))
    ax.stairs(counts, edges, fill=True, color="tab:blue")
    ax.set_xlabel(plane.value_label)
    ax.set_ylabel("count")
    if not finite.size:
        ax.text(0.5, 0.5, "no finite values", ha="center", va="center", transform=ax.transAxes)
