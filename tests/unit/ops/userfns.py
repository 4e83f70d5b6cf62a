"""User functions for the ``map`` step's tests, loaded as ``path/userfns.py:name`` (a
file function: it travels to workers by value)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

CALLS: list[tuple[int, ...]] = []  # shapes the last calls saw (synchronous scheduler only)


def box(a: np.ndarray, size: int = 3) -> np.ndarray:
    """A neighbourhood function: the mean over a box of ``size`` along every dim of ``a``
    (reach ``size // 2``); scipy's reflect mode at the edges of what it is given."""
    return ndimage.uniform_filter(a, size=size, mode="reflect")


def seen(a: np.ndarray) -> np.ndarray:
    CALLS.append(a.shape)
    return a


def edges(a: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """skimage.feature.canny, which takes 2-D images only."""
    from skimage.feature import canny

    return canny(a, sigma=sigma)


def shorter(a: np.ndarray) -> np.ndarray:
    return a[1:]


def as_float64(a: np.ndarray) -> np.ndarray:
    return a.astype("float64")


def as_list(a: np.ndarray) -> Any:
    return a.tolist()


def fails(a: np.ndarray) -> np.ndarray:
    raise ValueError("no cells found\nin this block")


def no_args() -> None:
    """Cannot take a block."""


NOT_CALLABLE = 3
