"""A per-file function for `hpcscale map`: cut one long recording (a 1-D ``.npy``)
into fixed-size pieces and return their names.

    hpcscale map 'recordings/*.npy' pieces/ --fn docs/examples/cut_pieces.py:cut \
        --kwarg samples=48000

The last piece may be shorter. The returned row has the piece count, their names
(one string, comma-separated) and the recording's length.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def cut(path: str, out_dir: str, samples: int = 48000) -> dict[str, object]:
    recording = np.load(path, mmap_mode="r")
    names = []
    for i, start in enumerate(range(0, len(recording), samples)):
        name = f"piece-{i:04d}.npy"
        np.save(Path(out_dir) / name, np.asarray(recording[start:start + samples]))
        names.append(name)
    return {"pieces": len(names), "names": ",".join(names), "samples": len(recording)}
