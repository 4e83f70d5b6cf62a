"""Which blocks of an unfinished output are written: the record a re-run resumes from.

Zarr cannot tell: it does not write chunks that hold only the fill value,
and a chunk file that exists may be the last run's. So the driver appends a
block's index to ``<store>/.hpcscale-manifest`` once the worker that wrote
the block reports success, and only then. A block missing from the manifest
is written again on resume (the same bytes, as the computation is the same);
a block in it is never recomputed. The manifest is removed when the store is
marked complete: from then on the marker is the record.

Zarr's local store writes each chunk to ``<chunk>.<uuid>.partial`` and
renames it into place; a worker killed mid-write leaves the ``.partial``
behind, which :func:`remove_partials` deletes before a resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["MANIFEST", "Manifest", "remove_partials"]

MANIFEST = ".hpcscale-manifest"

Index = tuple[int, ...]


class Manifest:
    """An append-only list of written block indices, one JSON array per line."""

    def __init__(self, store: str | os.PathLike[str]) -> None:
        self.path = Path(store) / MANIFEST

    def start(self) -> None:
        """An empty manifest: nothing written yet."""
        self.path.write_text("")

    def done(self) -> set[Index]:
        """The recorded blocks; a torn last line (killed mid-append) is ignored."""
        try:
            # a torn or damaged byte must not stop a resume: its line is skipped
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return set()
        found: set[Index] = set()
        for line in text.splitlines():
            try:
                index = json.loads(line)
            except ValueError:
                continue
            if isinstance(index, list) and all(isinstance(i, int) for i in index):
                found.add(tuple(index))
        return found

    def record(self, indices: Iterable[Index]) -> None:
        lines = "".join(json.dumps(list(i)) + "\n" for i in indices)
        if not lines:
            return
        # One write() of whole lines in append mode: a kill -9 can tear at most
        # the last line, which done() skips.
        with self.path.open("a") as f:
            f.write(lines)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def remove_partials(store: str | os.PathLike[str]) -> int:
    """Delete zarr's half-written ``*.partial`` chunk files under ``store``; their count."""
    removed = 0
    for dirpath, _, files in os.walk(store):
        for name in files:
            if name.endswith(".partial"):
                Path(dirpath, name).unlink(missing_ok=True)
                removed += 1
    return removed
