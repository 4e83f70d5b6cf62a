"""A per-file function for `hpcscale map`: a thumbnail of each image and its statistics.

    hpcscale map 'scans/*.tif' thumbs/ --fn docs/examples/thumbnail.py:thumbnail

Returns scalars (columns of the index) and a fixed-shape histogram (a data variable
of the index with a leading ``file`` dim).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.io
import skimage.transform


def thumbnail(path: str, out_dir: str, size: int = 64, bins: int = 16) -> dict[str, object]:
    image = skimage.io.imread(path)
    gray = image.mean(axis=-1) if image.ndim == 3 else image.astype(float)
    small = skimage.transform.resize(gray, (size, size), preserve_range=True,
                                     anti_aliasing=True)
    np.save(Path(out_dir) / "thumbnail.npy", small.astype(np.float32))
    hist, _ = np.histogram(gray, bins=bins, range=(0, 255))
    return {"mean": float(gray.mean()), "std": float(gray.std()),
            "height": int(gray.shape[0]), "width": int(gray.shape[1]), "histogram": hist}
