"""Is a contestant's output the reference's (numpy/scipy on the whole array)?

Outputs are read back from Zarr (an hpcscale store is a group holding the
array ``result``) and compared slab by slab along the first axis, so a 1 GiB
result never needs two whole copies in memory. A fast wrong answer must not
count: the benchmark marks a run with a wrong output as failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

RTOL = 1e-4
ATOL = 1e-5
_SLAB_BYTES = 64 << 20


def open_output(path: Path) -> Any:
    import zarr

    node = zarr.open(store=str(path), mode="r")
    if isinstance(node, zarr.Group):
        return node["result"]
    return node


def compare(reference: Path, candidate: Path, *, exact: bool) -> dict[str, Any]:
    """{"correct": bool, "max_abs_err": float, "detail": str}."""
    ref, got = open_output(reference), open_output(candidate)
    if tuple(ref.shape) != tuple(got.shape):
        return {"correct": False, "max_abs_err": None,
                "detail": f"shape {tuple(got.shape)}, expected {tuple(ref.shape)}"}
    if ref.ndim == 0 or ref.shape[0] == 0:
        slabs = [()]
    else:
        plane = max(1, int(np.prod(ref.shape[1:])) * ref.dtype.itemsize)
        step = max(1, _SLAB_BYTES // plane)
        slabs = [(slice(i, i + step),) for i in range(0, ref.shape[0], step)]
    worst = 0.0
    ok = True
    for sel in slabs:
        a = np.asarray(ref[sel] if sel else ref[...])
        b = np.asarray(got[sel] if sel else got[...])
        if a.size:
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            worst = max(worst, float(np.nanmax(diff)))
        same = (np.array_equal(a, b, equal_nan=True) if exact
                else np.allclose(b, a, rtol=RTOL, atol=ATOL, equal_nan=True))
        ok = ok and bool(same)
    detail = "equal" if ok and worst == 0 else ("close" if ok else "DIFFERS")
    return {"correct": ok, "max_abs_err": worst, "detail": detail}
