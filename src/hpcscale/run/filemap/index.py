"""A map run's output folder: a directory per input file, the journal, the index.

::

    results/
      <name>/            one per input file: the function's ``out_dir``
      index.zarr         the index: one xarray Dataset indexed by ``file``
      index.csv          its columns as a spreadsheet (arrays left out)
      .hpcscale/
        map.json         what made these results: function, digest, kwargs, files
        journal.jsonl    a row per file as it finished (the dask engine's driver appends)
        rows/            the same, one file per array task (``--engine array``)

The journal is the record: a row is appended as each file finishes, so a run
killed at any moment loses nothing that finished, and a resume reads it. The
index is written from it at the end of every run, also an interrupted or failed
one, through a temporary store and a rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpcscale._fs import atomic_write, write_json
from hpcscale._meta import __version__
from hpcscale.run.filemap.task import FAILED, NOT_RUN, OK, decode

INDEX_ZARR = "index.zarr"
INDEX_CSV = "index.csv"
OWN = ".hpcscale"  # the map's own records inside the output folder
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_RESERVED_NAMES = frozenset({INDEX_ZARR, INDEX_CSV, OWN})


@dataclass(frozen=True)
class MapFile:
    """One input file: its absolute path (the key of its row), the path as the glob
    matched it, its folder's name under the output, and its size in bytes."""

    key: str
    file: str
    dir: str
    size: int = 0


def _name(path: str) -> str:
    """A folder name for an input file: its name without the suffix, in safe characters."""
    base = os.path.basename(os.path.normpath(path))
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    name = _SAFE.sub("_", stem).lstrip(".-") or "file"
    return name[:100]


def assign_dirs(found: Sequence[tuple[str, str, int]], known: Mapping[str, str]) -> list[MapFile]:
    """Each of ``found`` (key, path as matched, size) with its folder name: the one an
    earlier run gave it (``known``: key -> name), else its stem, else, where stems
    collide, its stem and a hash of its path: the same file always gets the same folder."""
    taken = set(known.values()) | _RESERVED_NAMES
    out: list[MapFile] = []
    for key, file, size in found:
        name = known.get(key)
        if name is None:
            name = _name(file)
            if name in taken:
                name = f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
            taken.add(name)
        out.append(MapFile(key, file, name, size))
    return out


@dataclass
class Results:
    """The output folder of a map run and the records in it."""

    path: Path  # absolute
    shown: str = ""  # as the user wrote it, for messages
    _offsets: dict[Path, int] = field(default_factory=dict)

    @property
    def own(self) -> Path:
        return self.path / OWN

    @property
    def record(self) -> Path:
        return self.own / "map.json"

    @property
    def journal(self) -> Path:
        return self.own / "journal.jsonl"

    @property
    def rows_dir(self) -> Path:
        return self.own / "rows"

    @property
    def index_zarr(self) -> Path:
        return self.path / INDEX_ZARR

    @property
    def index_csv(self) -> Path:
        return self.path / INDEX_CSV

    def said(self, name: str) -> str:
        """``name`` inside the output, as the user wrote the output (``results/index.csv``)."""
        return os.path.join(self.shown or str(self.path), name)

    # -- what is there ----------------------------------------------------------------------
    def is_map_output(self) -> bool:
        return self.record.is_file()

    def read_record(self) -> dict[str, Any]:
        try:
            data = json.loads(self.record.read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def read_rows(self) -> dict[str, dict[str, Any]]:
        """Every row on record, by key; of several for one file, the last to finish."""
        rows: dict[str, dict[str, Any]] = {}
        files = [self.journal] if self.journal.is_file() else []
        if self.rows_dir.is_dir():
            files += sorted(self.rows_dir.glob("*.jsonl"))
        for path in files:
            for row in _read_jsonl(path):
                key = row.get("key")
                if not isinstance(key, str):
                    continue
                if key not in rows or row.get("t", 0) >= rows[key].get("t", 0):
                    rows[key] = row
        return rows

    def new_rows(self, pattern: str) -> list[dict[str, Any]]:
        """Rows appended to the rows files matching ``pattern`` since the last call (whole
        lines only: a line still being written is read next time)."""
        found: list[dict[str, Any]] = []
        for path in sorted(self.rows_dir.glob(pattern)) if self.rows_dir.is_dir() else []:
            start = self._offsets.get(path, 0)
            try:
                with path.open("rb") as f:
                    f.seek(start)
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1
            self._offsets[path] = start + end
            found += _parse_lines(data[:end])
        return found

    # -- writing ----------------------------------------------------------------------------
    def start(self, record: Mapping[str, Any], *, overwrite: bool) -> None:
        """Make the folder for a run; with ``overwrite``, forget every earlier row."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.own.mkdir(exist_ok=True)
        if overwrite:
            self.journal.unlink(missing_ok=True)
            shutil.rmtree(self.rows_dir, ignore_errors=True)
        self.rows_dir.mkdir(exist_ok=True)
        write_json(self.record, dict(record))

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Append finished rows to the journal, flushed: a driver killed after this
        loses none of them."""
        lines = "".join(json.dumps(dict(r), default=str) + "\n" for r in rows)
        if lines:
            with self.journal.open("a", encoding="utf-8") as f:
                f.write(lines)
                f.flush()

    def write_index(self, files: Sequence[MapFile], rows: Mapping[str, Mapping[str, Any]],
                    attrs: Mapping[str, Any]) -> list[str]:
        """Write ``index.zarr`` and ``index.csv`` for ``files`` from ``rows``; returns
        what was left out (arrays whose shapes differ between files)."""
        ds, left_out = build_index(files, rows, attrs)
        self._write_zarr(ds)
        scalars = [v for v in ds.data_vars if ds[v].dims == ("file",)]
        atomic_write(self.index_csv, ds[scalars].to_dataframe().to_csv())
        return left_out

    def _write_zarr(self, ds: Any) -> None:
        from hpcscale.io.output import quiet_consolidation

        tmp = self.path / f".{INDEX_ZARR}.tmp-{os.getpid()}"
        old = self.path / f".{INDEX_ZARR}.old-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        with quiet_consolidation():
            ds.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
        # a reader sees the old index or the new one; a crash between the renames
        # leaves the journal, from which the next run writes the index again
        if self.index_zarr.exists():
            self.index_zarr.rename(old)
        tmp.rename(self.index_zarr)
        shutil.rmtree(old, ignore_errors=True)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return _parse_lines(data)


def _parse_lines(data: bytes) -> list[dict[str, Any]]:
    rows = []
    for line in data.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed writer: that file is simply not done
        if isinstance(row, dict):
            rows.append(row)
    return rows


def record_of(function: Mapping[str, Any], kwargs: Mapping[str, Any], files: str) -> dict[str, Any]:
    """What ``map.json`` says made the results (a resume compares it)."""
    return {"function": dict(function), "kwargs": dict(kwargs), "files": files,
            "hpcscale_version": __version__, "written": time.time()}


def build_index(files: Sequence[MapFile], rows: Mapping[str, Mapping[str, Any]],
                attrs: Mapping[str, Any]) -> tuple[Any, list[str]]:
    """The index Dataset: a row per file (``not run`` where none is on record), the
    returned scalars as columns and same-shape arrays as variables along ``file``."""
    import xarray as xr

    n = len(files)
    got = [rows.get(f.key) for f in files]
    columns: dict[str, list[Any]] = {}
    for i, row in enumerate(got):
        for key, value in ((row or {}).get("values") or {}).items():
            columns.setdefault(key, [None] * n)[i] = decode(value)
    data: dict[str, Any] = {
        "dir": ("file", _strings([f.dir for f in files])),
        "status": ("file", _strings([r.get("status", FAILED) if r else NOT_RUN for r in got])),
        "seconds": ("file", np.array([_float(r.get("seconds")) if r else np.nan for r in got])),
        "worker": ("file", _strings([str(r.get("worker", "")) if r else "" for r in got])),
        "error": ("file", _strings([str(r.get("error", "")) if r else "" for r in got])),
    }
    left_out: list[str] = []
    for key, values in columns.items():
        arrays = [v for v in values if isinstance(v, np.ndarray)]
        if not arrays:
            data[key] = ("file", _column(values))
            continue
        shapes = {a.shape for a in arrays}
        scalars = sum(v is not None for v in values) - len(arrays)
        if len(shapes) > 1 or scalars:
            said = ", ".join(str(s) for s in sorted(shapes)[:3]) + (", scalars" if scalars else "")
            left_out.append(f"{key}: an array of a different shape in some files ({said})")
            continue
        (shape,) = shapes
        data[key] = (("file", *(f"{key}_dim_{d}" for d in range(len(shape)))),
                     _stack(values, shape))
    summary = {OK: 0, FAILED: 0, NOT_RUN: 0}
    for status in data["status"][1]:
        summary[status] = summary.get(status, 0) + 1
    all_attrs = {**attrs, "files_ok": summary[OK], "files_failed": summary[FAILED],
                 "files_not_run": summary[NOT_RUN], "left_out": left_out}
    ds = xr.Dataset(data, coords={"file": ("file", _strings([f.file for f in files]))},
                    attrs=_jsonable(all_attrs))
    return ds, left_out


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _strings(values: Sequence[str]) -> np.ndarray:
    # object strings: Zarr v3's variable-length UTF-8 (fixed-width has no v3 spec yet)
    return np.array(list(values), dtype=object) if values else np.array([], dtype=object)


def _column(values: list[Any]) -> np.ndarray:
    """One returned scalar across files: bools, ints, numbers (NaN where missing), else
    strings ("" where missing)."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, bool) for v in present) and len(present) == len(values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present) \
            and len(present) == len(values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values])
    return _strings(["" if v is None else str(v) for v in values])


def _stack(values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    arrays = [v for v in values if v is not None]
    dtype = np.result_type(*arrays)
    if len(arrays) < len(values) and dtype.kind in "biu":
        dtype = np.dtype("float64")  # NaN for the files without a value
    out = np.zeros((len(values), *shape), dtype=dtype)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
        else:
            out[i] = v
    return out


def _jsonable(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes Zarr can store: JSON values (kwargs may hold anything TOML allows)."""
    result: dict[str, Any] = json.loads(json.dumps(dict(attrs), default=str))
    return result
