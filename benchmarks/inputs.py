"""The benchmark's inputs: float32 Zarr v3 arrays, zarr's default codec, made once.

A size is given in bytes (``256MiB``, ``1GiB``: planes of 2048 x 2048, as many
as fit) or as a shape (``8x256x256``). Chunks are the issue's 8 x 512 x 512,
scaled down for small planes (a quarter of the plane per side) and thin stacks.
The values are a smooth field plus noise, quantized to 1/256 like instrument
data of limited precision (so the default codec compresses them somewhat),
deterministic per chunk. An input is written under a temporary name and
renamed when complete, so an interrupted run never reuses half an input.
"""

from __future__ import annotations

import math
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PLANE = 2048
CHUNK = (8, 512, 512)
DTYPE = np.dtype("float32")
DIMS = ("z", "y", "x")
DEFAULT_SIZES = ("256MiB", "1GiB")
QUICK_SIZES = ("8x256x256", "32x256x256")
_UNITS = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "kb": 1000, "mb": 1000**2, "gb": 1000**3}


@dataclass(frozen=True)
class Size:
    """One input size: its label (as given), shape and chunks."""

    label: str
    shape: tuple[int, int, int]
    chunks: tuple[int, int, int]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE.itemsize

    @property
    def chunk_bytes(self) -> int:
        return math.prod(self.chunks) * DTYPE.itemsize

    @property
    def nchunks(self) -> int:
        return math.prod(math.ceil(n / c) for n, c in zip(self.shape, self.chunks, strict=True))

    @property
    def name(self) -> str:
        return "x".join(str(n) for n in self.shape)


def parse_size(text: str) -> Size:
    """``256MiB``/``1GiB`` (planes of 2048 x 2048) or ``ZxYxX``."""
    spec = text.strip()
    shape_match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", spec)
    if shape_match:
        nz, ny, nx = (int(g) for g in shape_match.groups())
    else:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KkMmGg]i?[Bb])", spec)
        if not m:
            raise ValueError(f"size {text!r}: expected e.g. 256MiB, 1GiB or 16x2048x2048")
        nbytes = float(m.group(1)) * _UNITS[m.group(2).lower()]
        plane_bytes = PLANE * PLANE * DTYPE.itemsize
        nz = int(nbytes // plane_bytes)
        if nz < 1 or nz * plane_bytes != nbytes:
            raise ValueError(f"size {text!r}: must be a whole number of {PLANE}x{PLANE} "
                             f"float32 planes ({plane_bytes} bytes each)")
        ny = nx = PLANE
    if min(nz, ny, nx) < 1:
        raise ValueError(f"size {text!r}: every dim must be >= 1")
    chunks = (min(CHUNK[0], max(1, nz // 2)) if nz < 2 * CHUNK[0] else CHUNK[0],
              min(CHUNK[1], max(1, ny // 4)), min(CHUNK[2], max(1, nx // 4)))
    return Size(text, (nz, ny, nx), chunks)


def path_for(directory: Path, size: Size) -> Path:
    return directory / f"input-{size.name}-c{'x'.join(map(str, size.chunks))}.zarr"


def _block(size: Size, index: tuple[int, int, int]) -> np.ndarray:
    """The values of one chunk: deterministic, independent of the other chunks."""
    starts = [i * c for i, c in zip(index, size.chunks, strict=True)]
    stops = [min(s + c, n) for s, c, n in zip(starts, size.chunks, size.shape, strict=True)]
    z, y, x = (np.arange(a, b, dtype=np.float32) for a, b in zip(starts, stops, strict=True))
    field = (np.sin(y / 97.0)[:, None] * np.cos(x / 131.0)[None, :]).astype(np.float32)
    base = field[None, :, :] + (0.01 * z)[:, None, None]
    seed = np.ravel_multi_index(index, [math.ceil(n / c) for n, c in
                                        zip(size.shape, size.chunks, strict=True)])
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(base.shape, dtype=np.float32)
    return np.round((base + noise) * 256.0).astype(np.float32) / np.float32(256.0)


def ensure_input(directory: Path, size: Size, threads: int = 2) -> tuple[Path, bool]:
    """The input of ``size`` in ``directory``; written unless already there. (path, made)."""
    import zarr

    path = path_for(directory, size)
    if (path / "zarr.json").is_file():
        return path, False
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    arr = zarr.create_array(store=str(tmp), shape=size.shape, chunks=size.chunks, dtype=DTYPE,
                            dimension_names=DIMS, zarr_format=3)
    grid = [range(math.ceil(n / c)) for n, c in zip(size.shape, size.chunks, strict=True)]
    indices = [(i, j, k) for i in grid[0] for j in grid[1] for k in grid[2]]

    def write(index: tuple[int, int, int]) -> None:
        sel = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, size.chunks, strict=True))
        arr[sel] = _block(size, index)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, indices))
    tmp.rename(path)
    return path, True


def warm(path: Path) -> int:
    """Read every file of the store once, so every contestant starts from the page cache."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                while chunk := f.read(1 << 24):
                    total += len(chunk)
    return total
