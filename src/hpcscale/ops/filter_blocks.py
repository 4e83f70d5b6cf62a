"""What runs on one block of a filter: scipy.ndimage, optionally restricted to some axes.

Each function takes per-axis parameters over ALL axes of the block (the step
module fills in "no-op" values, sigma 0 or size 1, on the axes not acted on)
and returns an array of the block's shape and dtype. With all axes acted on,
the result is exactly the public scipy function's; restricted, it is that
function applied to every slice along the other axes.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import scipy.ndimage as ndi

Block = np.ndarray[Any, Any]


def gaussian_block(
    block: Block,
    *,
    name: str,
    sigma: tuple[float, ...],
    radius: tuple[int, ...] | None,
    truncate: float,
    mode: str,
    cval: float,
    axes: tuple[int, ...],
) -> Block:
    # sigma is 0 on the axes not acted on, which gaussian_filter skips. (No axes= anywhere
    # here: it needs scipy >= 1.15 for these functions, and size 1 / sigma 0 does the same.)
    kw: dict[str, Any] = {"mode": mode, "cval": cval, "truncate": truncate, "radius": radius}
    if name == "gaussian":
        return cast(Block, ndi.gaussian_filter(block, sigma, **kw))
    if len(axes) == block.ndim:
        return cast(Block, getattr(ndi, name)(block, sigma, **kw))
    # Not scipy's own axes=: in scipy 1.17 gaussian_gradient_magnitude smooths the other
    # axes too and rejects per-axis sigma, and gaussian_laplace rejects per-axis radius.
    # So loop over the acted-on axes exactly as generic_gradient_magnitude/laplace do.
    order = 1 if name == "gaussian_gradient_magnitude" else 2

    def derivative(ax: int, output: Any) -> Block:
        orders = [0] * block.ndim
        orders[ax] = order
        return cast(Block, ndi.gaussian_filter(block, sigma, orders, output, **kw))

    out = np.zeros(block.shape, dtype=block.dtype)
    derivative(axes[0], out)
    if order == 1:
        np.multiply(out, out, out)
    for ax in axes[1:]:
        tmp = derivative(ax, out.dtype)
        if order == 1:
            np.multiply(tmp, tmp, tmp)
        out += tmp
    if order == 1:
        np.sqrt(out, out, casting="unsafe")
    return out


def size_block(
    block: Block,
    *,
    name: str,
    percentile: float | None,
    size: tuple[int, ...],
    origin: tuple[int, ...],
    mode: str,
    cval: float,
) -> Block:
    # size 1 on the axes not acted on: each slice is filtered on its own.
    kw: dict[str, Any] = {"size": size, "origin": origin, "mode": mode, "cval": cval}
    if name == "percentile":
        return cast(Block, ndi.percentile_filter(block, percentile, **kw))
    return cast(Block, getattr(ndi, f"{name}_filter")(block, **kw))


def edge_block(
    block: Block, *, name: str, axis: int, axes: tuple[int, ...], mode: str, cval: float
) -> Block:
    if len(axes) == block.ndim:
        return cast(Block, getattr(ndi, name)(block, axis, mode=mode, cval=cval))
    # scipy's sobel/prewitt smooth every other axis; restricted, mirror its loop.
    smooth = [1, 2, 1] if name == "sobel" else [1, 1, 1]
    out: Block = ndi.correlate1d(block, [-1, 0, 1], axis, None, mode, cval, 0)
    for ax in axes:
        if ax != axis:
            ndi.correlate1d(out, smooth, ax, out, mode, cval, 0)
    return out


def laplace_block(block: Block, *, axes: tuple[int, ...], mode: str, cval: float) -> Block:
    if len(axes) == block.ndim:
        return cast(Block, ndi.laplace(block, mode=mode, cval=cval))
    # As scipy's generic_laplace, restricted to the acted-on axes.
    out: Block = ndi.correlate1d(block, [1, -2, 1], axes[0], None, mode, cval, 0)
    for ax in axes[1:]:
        out += ndi.correlate1d(block, [1, -2, 1], ax, out.dtype, mode, cval, 0)
    return out
