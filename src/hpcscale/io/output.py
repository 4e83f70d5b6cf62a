"""Zarr output that xarray and other Zarr readers open without surprises.

A result is written as a Zarr group holding one array with dimension names,
the coordinates of the dims that survive, the variable's attributes and, in
the group attributes, ``provenance`` and the ``hpcscale`` marker. The marker
says ``complete: false`` from the moment the metadata exist until every block
is written and recorded in the store's manifest (:mod:`hpcscale.io.manifest`);
``is_complete`` tells a finished store from a crashed or running one. An
unfinished store of the same job (same ``job`` fingerprint) is resumed: the
blocks its manifest records are not computed again. An existing path is
replaced only with ``overwrite=True`` and only when it is a store hpcscale
wrote: ``check_output`` guards that before anything is submitted, because
Zarr's own mode "w" deletes whatever the directory holds.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import json
import os
import socket
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal, cast

import dask.array as da
import dask.base
import numcodecs
import numpy as np
import xarray as xr
import zarr
import zarr.errors
from dask.delayed import Delayed
from zarr.codecs import BloscCodec, BloscShuffle
from zarr.storage import LocalStore

from hpcscale._fs import pid_alive
from hpcscale._meta import __version__
from hpcscale.errors import HpcscaleError, OutputError, RunError
from hpcscale.io._source import one_line
from hpcscale.io.manifest import MANIFEST, Manifest, remove_partials

__all__ = [
    "DISK_FULL",
    "PendingWrite",
    "check_not_input",
    "check_output",
    "default_codec",
    "is_complete",
    "read_marker",
    "write_zarr",
]

MARKER_KEY = "hpcscale"
_ZARR_METADATA = frozenset({"zarr.json", ".zgroup", ".zattrs", ".zarray", ".zmetadata"})
# errno values of a full disk or an exhausted quota
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})

Index = tuple[int, ...]
# Attributes that make a reader transform the stored values. The values we
# write are final, so carrying these over from the input would change them.
_CF_ENCODING_ATTRS = frozenset(
    {"_FillValue", "missing_value", "scale_factor", "add_offset", "_Unsigned", "_ARRAY_DIMENSIONS"}
)


@dataclass(frozen=True)
class PendingWrite:
    """A started (or resumed) write: its metadata exist, marked incomplete.

    ``blocks`` holds one delayed write per block still to write, by block
    index; ``resumed`` counts the blocks an earlier run wrote. Compute the
    blocks (any scheduler), pass the indices of those that succeeded to
    :meth:`written` as they finish, then call :meth:`finalize`, which marks
    the store complete only when every block is recorded.
    """

    path: str
    blocks: dict[Index, Delayed]
    total: int
    resumed: int
    partials_removed: int
    manifest: Manifest
    fmt: Literal[2, 3]

    def written(self, indices: Iterable[Index]) -> None:
        self.manifest.record(indices)

    def finalize(self) -> None:
        missing = self.total - len(self.manifest.done())
        if missing > 0:
            raise OutputError(f"output {self.path}: {missing} block(s) not written; "
                              "the store stays marked incomplete")
        # Zarr warns about any file in a group it does not know, so the manifest
        # goes before the metadata is consolidated; the marker is the record then.
        self.manifest.remove()
        _finalize(self.path, self.fmt)

    def compute(self) -> None:
        """Write every remaining block with the current dask scheduler, then finalize."""
        keys = list(self.blocks)
        try:
            dask.base.compute(*self.blocks.values())  # type: ignore[no-untyped-call]
        except OSError as exc:
            raise disk_full_error(self.path, exc) or exc from exc
        self.written(keys)
        self.finalize()


def disk_full_error(path: str, exc: BaseException, needed: int | None = None) -> RunError | None:
    """A one-line error naming the output and the space, when ``exc`` is a full disk."""
    if not (isinstance(exc, OSError) and exc.errno in DISK_FULL):
        return None
    try:
        stat = os.statvfs(path if os.path.exists(path) else os.path.dirname(path) or ".")
        free = f"{_bytes(stat.f_bavail * stat.f_frsize)} free"
    except OSError:
        free = "free space unknown"
    need = f", the result needs up to {_bytes(needed)} uncompressed" if needed else ""
    return RunError(
        f"output {path}: disk full ({exc.strerror or 'no space left'}; {free}{need}); "
        "the store is left marked incomplete: free space or choose another path, "
        "then re-run to resume"
    )


def _bytes(n: int) -> str:
    from hpcscale.units import format_bytes

    return format_bytes(n)


def check_not_input(
    path: str | os.PathLike[str], inputs: Sequence[str | os.PathLike[str]],
    error: type[HpcscaleError] = OutputError, what: str = "output",
) -> None:
    """Refuse, with one line, an output that is an input, lies inside one or holds one.

    Inputs are read-only: whatever a command writes (a Zarr store, a script, a
    PNG, a summary) must not land in one. Paths are compared after resolving
    symlinks and ``..``, so a link or a detour does not hide the input. An
    input that is a glob (``dir/*.tif``) covers the files it matches and any
    path it would match (a later run would read it as one of its images);
    other paths in the glob's folder, such as ``dir/mean.zarr``, are allowed.
    ``error`` and ``what`` word the message (``what`` names the option).
    """
    text = os.path.expanduser(os.fspath(path))
    out = Path(os.path.realpath(text))
    for given in inputs:
        inp = os.path.expanduser(os.fspath(given))
        if not os.path.lexists(inp) and glob.has_magic(inp):
            reason = _glob_covers(out, inp)
        else:
            reason = _covers(out, Path(os.path.realpath(inp)))
        if reason:
            raise error(f"{what} {text}: {reason} {inp}; inputs are read-only: "
                        "choose a path outside it")


def _covers(out: Path, inp: Path) -> str | None:
    if out == inp:
        return "is the input"
    if out.is_relative_to(inp):
        return "is inside the input"
    if inp.is_relative_to(out):
        return "holds the input"
    return None


def _glob_covers(out: Path, pattern: str) -> str | None:
    # The glob's folder part, up to its first wildcard, resolved like the output.
    parts = Path(os.path.abspath(pattern)).parts
    fixed = next(i for i, part in enumerate(parts) if glob.has_magic(part))
    base = Path(os.path.realpath(Path(*parts[:fixed])))
    if _matches(out, base, parts[fixed:]):
        return "would be matched by the input"
    # A glob may match 100,000 files: resolve each folder once, not each file.
    folders: dict[str, Path] = {}
    for name in glob.glob(pattern):
        head, tail = os.path.split(name)
        if head not in folders:
            folders[head] = Path(os.path.realpath(head or "."))
        reason = _covers(out, folders[head] / tail)
        if reason:
            return reason
    return None


def _matches(out: Path, base: Path, pattern: tuple[str, ...]) -> bool:
    """Whether ``glob`` would match ``out`` with ``base/pattern`` (as glob: one name per
    part, and a leading dot only matched by a pattern that has one)."""
    if not out.is_relative_to(base):
        return False
    names = out.relative_to(base).parts
    return len(names) == len(pattern) and all(
        fnmatch.fnmatchcase(n, p) and (p.startswith(".") or not n.startswith("."))
        for n, p in zip(names, pattern, strict=True))


def check_output(
    path: str | os.PathLike[str], *, overwrite: bool, job: str | None = None,
    inputs: Sequence[str | os.PathLike[str]] = (), functions: Mapping[str, str] | None = None,
) -> Literal["new", "replace", "resume"]:
    """Refuse, with a one-line ``OutputError``, an output path that must not be written.

    Call before submitting anything. Never allowed: an output that is one of
    ``inputs``, inside one or holding one (:func:`check_not_input`). Allowed:
    a path that does not exist in a writable directory, an empty directory
    ("new"); with ``overwrite=True``, a Zarr store written by hpcscale (found
    by its marker) holding nothing else ("replace"); without it, such a store
    left unfinished by the same ``job`` (its fingerprint) and no longer being
    written ("resume"). Anything else
    that exists is never replaced, whatever ``overwrite`` says. ``functions`` (a user
    function's name to its digest, recorded in the marker) lets the refusal of an
    unfinished store say that a function changed since it was started.
    """
    text = os.path.expanduser(os.fspath(path))
    check_not_input(text, inputs)
    p = Path(text)
    parent = p.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"output {text}: parent directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output {text}: parent directory {parent} is not writable")
    if not os.path.lexists(p):
        return "new"
    refuse = (
        f"output {text}: exists and is not a Zarr store written by hpcscale; "
        "refusing to replace it, even with --overwrite (choose another path)"
    )
    if p.is_symlink() or not p.is_dir():
        raise OutputError(refuse)
    entries = sorted(os.listdir(p))
    if not entries:
        return "new"
    marker = read_marker(p)
    if marker is None:
        raise OutputError(refuse)
    foreign = [e for e in entries if not _is_zarr_entry(p / e)]
    if foreign:
        raise OutputError(
            f"output {text}: holds files that are not part of its Zarr store "
            f"({', '.join(foreign[:5])}); refusing to replace it, even with --overwrite"
        )
    if not os.access(p, os.W_OK | os.X_OK):
        raise OutputError(f"output {text}: exists and is not writable")
    if marker.get("complete") is not True:
        writer = _live_writer(marker)
        if writer:
            raise OutputError(f"output {text}: is being written by {writer}; "
                              "wait for it or cancel it")
    if overwrite:
        return "replace"
    if marker.get("complete") is True:
        raise OutputError(
            f"output {text}: already exists (an hpcscale result); pass --overwrite to replace it"
        )
    if job is not None and marker.get("job") == job:
        return "resume"
    changed = _changed_function(marker.get("functions"), functions or {})
    if changed:
        raise OutputError(
            f"output {text}: an unfinished result made with another version of the function "
            f"{changed} (it changed since that run started); cannot resume it: pass "
            "--overwrite to replace it, or restore the function to resume"
        )
    raise OutputError(
        f"output {text}: an unfinished result of a different job (other input, steps, "
        "functions or output settings); pass --overwrite to replace it"
    )


def _changed_function(then: object, now: Mapping[str, str]) -> str | None:
    """The first function recorded in a store's marker whose digest differs now."""
    if not isinstance(then, dict):
        return None
    for name, digest in now.items():
        if name in then and then[name] != digest:
            return name
    return None


def _live_writer(marker: Mapping[str, Any]) -> str | None:
    """'run R (pid P)' when the process that started this store still runs on this host."""
    pid, host = marker.get("pid"), marker.get("host")
    if not isinstance(pid, int) or host != socket.gethostname() or pid == os.getpid():
        return None
    if not pid_alive(pid):
        return None
    return f"run {marker.get('run', '?')} (pid {pid}, still running)"


def _is_zarr_entry(entry: Path) -> bool:
    if entry.is_symlink():
        return False
    if entry.is_file():
        return entry.name in _ZARR_METADATA or entry.name == MANIFEST
    return entry.is_dir() and any((entry / m).is_file() for m in _ZARR_METADATA)


def read_marker(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``hpcscale`` marker from the store's root group attributes, or None.

    None when the path is missing, not a Zarr group, or not written by hpcscale.
    Reads the metadata file itself, never a consolidated copy that may be stale.
    """
    root = Path(os.path.expanduser(os.fspath(path)))
    try:
        if (root / "zarr.json").is_file():
            meta = json.loads((root / "zarr.json").read_text())
            attrs = meta.get("attributes", {}) if meta.get("node_type") == "group" else {}
        elif (root / ".zgroup").is_file():
            zattrs = root / ".zattrs"
            attrs = json.loads(zattrs.read_text()) if zattrs.is_file() else {}
        else:
            return None
    except (OSError, ValueError, AttributeError):
        return None
    marker = attrs.get(MARKER_KEY) if isinstance(attrs, dict) else None
    if isinstance(marker, dict) and marker.get("writer") == "hpcscale":
        return marker
    return None


def is_complete(path: str | os.PathLike[str]) -> bool:
    """True only for an hpcscale store whose every chunk was written (finalized)."""
    marker = read_marker(path)
    return marker is not None and marker.get("complete") is True


def default_codec(dtype: np.dtype[Any], zarr_format: int) -> Any:
    """The compressor hpcscale writes ``dtype`` with; None leaves Zarr's default.

    Numbers get Blosc LZ4 with byte shuffle (no shuffle for 1-byte types).
    """
    # Zarr's default (zstd, no shuffle) compresses floats poorly and decodes
    # slowly: on float32 fields we measured ~0.3 GB/s reading it back against
    # ~1.9 GB/s for blosc-lz4 with byte shuffle, which groups the exponent
    # bytes together and so also compresses better. Shuffling 1-byte items
    # changes nothing, so it is skipped for them.
    dtype = np.dtype(dtype)
    if dtype.kind not in "biufcmM":
        return None
    shuffle = dtype.itemsize > 1
    if zarr_format == 2:
        mode = numcodecs.Blosc.SHUFFLE if shuffle else numcodecs.Blosc.NOSHUFFLE
        return numcodecs.Blosc(cname="lz4", clevel=5, shuffle=mode)
    mode3 = BloscShuffle.shuffle if shuffle else BloscShuffle.noshuffle
    return BloscCodec(cname="lz4", clevel=5, shuffle=mode3)


def write_zarr(
    data: da.Array,
    *,
    path: str | os.PathLike[str],
    name: str,
    dims: tuple[str, ...],
    provenance: Mapping[str, Any],
    coords: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    zarr_format: int = 3,
    shards: tuple[int, ...] | None = None,
    job: str | None = None,
    run: str | None = None,
    inputs: Sequence[str] = (),
    functions: Mapping[str, str] | None = None,
) -> PendingWrite:
    """Prepare writing ``data`` as array ``name`` of a new Zarr group at ``path``, or
    resuming it: the store is created (its marker says unfinished) and the blocks still
    to write are returned as a :class:`PendingWrite` to compute and finalize.

    ``coords`` maps a dim name to its 1-D values (dims not in ``dims`` are
    dropped: the operation removed them) or a name to ``(dims, values)`` for
    other coordinates. ``provenance`` (operation, parameters, input...) goes
    to the group attrs with ``hpcscale_version`` and ``time`` added if absent.
    Zarr chunks follow the dask chunks (made regular first); with ``shards``
    (a multiple of the chunks, Zarr v3 only) the dask chunks become whole
    shards, so no two tasks ever write one chunk or shard.
    ``job`` is the fingerprint of what produces ``data``: an unfinished store
    with the same fingerprint is resumed (its recorded blocks are skipped, its
    stray ``.partial`` files removed) instead of refused. ``run`` names the run
    writing it, in the marker. ``inputs`` are the paths ``data`` is read from:
    an output that is, is inside or holds one of them is refused. ``functions`` (user
    functions' names to their digests) go in the marker, for :func:`check_output`.
    """
    text = os.path.expanduser(os.fspath(path))
    mode = check_output(text, overwrite=overwrite, job=job, inputs=inputs, functions=functions)
    if zarr_format not in (2, 3):
        raise OutputError(f"output {text}: zarr_format {zarr_format!r}; expected 2 or 3")
    fmt: Literal[2, 3] = 2 if zarr_format == 2 else 3
    if not name or "/" in name or name in dims:
        raise OutputError(
            f"output {text}: array name {name!r} must be non-empty, without '/', "
            f"and differ from the dims ({', '.join(dims)})"
        )
    if len(dims) != data.ndim or len(set(dims)) != len(dims):
        raise ValueError(f"dims {dims} do not name the {data.ndim} axes of the data once each")
    if any(np.isnan(c) for axis in data.chunks for c in axis):
        raise ValueError("data has unknown chunk sizes; call compute_chunk_sizes() first")
    data = _regular(data)
    chunks = tuple(max(int(c[0]), 1) if c else 1 for c in data.chunks)
    if shards is not None:
        _check_shards(text, shards, chunks, zarr_format)
        # One dask task per whole shard: a shard is a single object rewritten
        # as a whole, so two tasks writing parts of one shard lose each
        # other's chunks without an error.
        data = cast(da.Array, data.rechunk(shards))  # type: ignore[no-untyped-call]
    manifest = Manifest(text)
    partials = 0
    if mode == "resume":
        _check_resumable(text, name, data, fmt, chunks)
        partials = remove_partials(text)
    else:
        encoding: dict[str, Any] = {"chunks": chunks}
        if shards is not None:
            encoding["shards"] = shards
        codec = default_codec(data.dtype, zarr_format)
        if codec is not None:
            encoding["compressors"] = (codec,)
        _create(text, data, name, dims, fmt, encoding, coords, attrs, provenance, job, run,
                functions)
        manifest.start()
    blocks = _block_writes(data, text, name, fmt)
    done = manifest.done()
    return PendingWrite(
        path=text, blocks={i: d for i, d in blocks.items() if i not in done}, total=len(blocks),
        resumed=len(done & blocks.keys()), partials_removed=partials, manifest=manifest, fmt=fmt,
    )


def _create(
    path: str, data: da.Array, name: str, dims: tuple[str, ...], fmt: Literal[2, 3],
    encoding: dict[str, Any], coords: Mapping[str, Any] | None,
    attrs: Mapping[str, Any] | None, provenance: Mapping[str, Any], job: str | None,
    run: str | None, functions: Mapping[str, str] | None = None,
) -> None:
    """The store's metadata and coordinates, marked incomplete; no data blocks."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    marker: dict[str, Any] = {
        "writer": "hpcscale",
        "version": __version__,
        "array": name,
        "complete": False,
        "started": now,
        "job": job,
        "run": run,
        "host": socket.gethostname(),
        **({"functions": dict(functions)} if functions else {}),
        "pid": os.getpid(),
    }
    record = _jsonable(dict(provenance))
    record.setdefault("hpcscale_version", __version__)
    record.setdefault("time", now)
    variable_attrs = {k: v for k, v in (attrs or {}).items() if k not in _CF_ENCODING_ATTRS}
    ds = xr.Dataset(
        {name: (dims, data, _jsonable(variable_attrs))},
        coords=_coords(coords or {}, dims, tuple(data.shape)),
        attrs={MARKER_KEY: marker, "provenance": record},
    )
    with quiet_consolidation():
        try:
            # compute=False writes metadata and the (numpy) coordinates; the
            # data blocks are written by _store_block, one task each.
            ds.to_zarr(path, mode="w", zarr_format=fmt, consolidated=True,
                       encoding={name: encoding}, compute=False)
        except OSError as exc:
            raise disk_full_error(path, exc) or OutputError(
                f"output {path}: cannot write: {one_line(exc)}") from exc
        except (ValueError, TypeError, zarr.errors.BaseZarrError) as exc:
            raise OutputError(f"output {path}: cannot write: {one_line(exc)}") from exc


def _check_resumable(
    path: str, name: str, data: da.Array, fmt: Literal[2, 3], chunks: tuple[int, ...]
) -> None:
    """Refuse to resume into a store whose array does not fit ``data`` block for block."""
    try:
        arr = zarr.open_array(LocalStore(path), path=name, mode="r", zarr_format=fmt)
    except (OSError, ValueError, zarr.errors.BaseZarrError) as exc:
        raise OutputError(f"output {path}: cannot resume, array {name!r} unreadable "
                          f"({one_line(exc)}); pass --overwrite to start again") from exc
    same = (tuple(arr.shape) == tuple(data.shape) and arr.dtype == data.dtype
            and (not chunks or tuple(arr.chunks) == chunks))
    if not same:
        raise OutputError(
            f"output {path}: cannot resume, array {name!r} is {arr.dtype}{list(arr.shape)} "
            f"in chunks {list(arr.chunks)}, this job writes {data.dtype}{list(data.shape)} in "
            f"chunks {list(chunks)}; pass --overwrite to start again"
        )


def _block_writes(data: da.Array, path: str, name: str, fmt: Literal[2, 3]) -> dict[Index, Delayed]:
    """One delayed write per dask block, by block index."""
    marks = da.map_blocks(  # type: ignore[no-untyped-call]
        _store_block, data, path=path, array=name, zarr_format=fmt, dtype=bool,
        chunks=tuple((1,) * len(c) for c in data.chunks), meta=np.empty((0,) * data.ndim, bool),
    )
    delayed = marks.to_delayed()
    return {tuple(int(i) for i in index): d for index, d in np.ndenumerate(delayed)}


def _store_block(
    block: np.ndarray[Any, Any], *, path: str, array: str, zarr_format: Literal[2, 3],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray[Any, Any]:
    """Write one block into its region of the Zarr array (runs on a worker)."""
    assert block_info is not None
    region = tuple(slice(start, stop) for start, stop in block_info[0]["array-location"])
    out = zarr.open_array(LocalStore(path), path=array, mode="r+", zarr_format=zarr_format)
    out[region] = block
    return np.ones((1,) * block.ndim, dtype=bool)


def _finalize(path: str, zarr_format: Literal[2, 3]) -> None:
    """Mark the store complete and refresh its consolidated metadata."""
    marker = read_marker(path)
    if marker is None:
        raise OutputError(f"output {path}: hpcscale marker missing; was the store replaced?")
    marker["complete"] = True
    marker["completed"] = datetime.now(UTC).isoformat(timespec="seconds")
    group = zarr.open_group(
        LocalStore(path), mode="r+", zarr_format=zarr_format, use_consolidated=False
    )
    group.attrs[MARKER_KEY] = marker
    # The consolidated copy (what xarray.open_zarr reads) still says
    # complete: false until rewritten.
    with quiet_consolidation():
        zarr.consolidate_metadata(LocalStore(path), zarr_format=zarr_format)


@contextmanager
def quiet_consolidation() -> Iterator[None]:
    # zarr-python warns that consolidated metadata is not in the v3 spec. We
    # write it anyway: without it xarray.open_zarr warns on every open, and
    # readers that do not know it ignore it.
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Consolidated metadata is currently not part",
            category=zarr.errors.ZarrUserWarning,
        )
        yield


def _regular(data: da.Array) -> da.Array:
    """``data`` with equal chunks along each axis (the last may be smaller)."""
    # A Zarr chunk grid is regular; ragged dask chunks (after filtering or
    # concatenation) would put two tasks on one Zarr chunk.
    regular = all(
        all(c == axis[0] for c in axis[:-1]) and axis[-1] <= axis[0] for axis in data.chunks if axis
    )
    if regular:
        return data
    regular_chunks = tuple(max(axis) if axis else 1 for axis in data.chunks)
    return cast(da.Array, data.rechunk(regular_chunks))  # type: ignore[no-untyped-call]


def _check_shards(
    path: str, shards: tuple[int, ...], chunks: tuple[int, ...], zarr_format: int
) -> None:
    if zarr_format != 3:
        raise OutputError(f"output {path}: shards need zarr_format 3 (got {zarr_format})")
    ok = len(shards) == len(chunks) and all(
        isinstance(s, int) and s > 0 and s % c == 0 for s, c in zip(shards, chunks, strict=False)
    )
    if not ok:
        raise OutputError(
            f"output {path}: shards {list(shards)} must be whole multiples of the "
            f"chunks {list(chunks)}, one per axis"
        )


def _coords(
    coords: Mapping[str, Any], dims: tuple[str, ...], shape: tuple[int, ...]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in coords.items():
        if isinstance(value, tuple):
            out[key] = value
            continue
        if key not in dims:
            continue
        values = np.asarray(value)
        length = shape[dims.index(key)]
        if values.shape != (length,):
            raise ValueError(f"coordinate {key!r} has shape {values.shape}; dim has {length}")
        out[key] = (key, values)
    return out


def _jsonable(value: Any) -> Any:
    """``value`` with Paths, numpy scalars, tuples and dates made JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return _jsonable(value.tolist())
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
