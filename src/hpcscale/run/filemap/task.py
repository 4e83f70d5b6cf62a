"""One file through the user's function, where it runs (a dask worker or an array task).

:func:`run_one` never raises for what the function does: an exception, a value the
index cannot hold, even ``sys.exit`` become a ``failed`` row with one line saying why.
A row is JSON-ready (arrays as base64 of their bytes), so it goes as it is into the
run's journal (:mod:`hpcscale.run.filemap.index`).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

OK = "ok"
FAILED = "failed"
NOT_RUN = "not run"  # in the index only: a file no run has processed yet

# Columns the index has for every file; a function's own keys must not take these names.
RESERVED = ("file", "dir", "status", "seconds", "worker", "error")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ARRAY = "__array__"  # a row value that is an array: {"__array__": [dtype, shape, base64]}


class BadResult(Exception):
    """What the function returned cannot be a row of the index."""


def pickled(func: Callable[..., Any]) -> bytes:
    """The function as the tasks get it: cloudpickle's bytes, so that a function of a
    ``file.py`` (registered to pickle by value) travels with its code. dask pickles a
    task's arguments by reference; it would send only the file's module name."""
    import cloudpickle

    return bytes(cloudpickle.dumps(func))


_LOADED: dict[bytes, Callable[..., Any]] = {}  # a worker unpickles each function once


def _unpickle(func: bytes) -> Callable[..., Any]:
    if func not in _LOADED:
        import cloudpickle

        _LOADED.clear()
        _LOADED[func] = cloudpickle.loads(func)
    return _LOADED[func]


def run_one(func: Callable[..., Any] | bytes, path: str, out_dir: str,
            kwargs: Mapping[str, Any], worker: str | None = None,
            source: str = "") -> dict[str, Any]:
    """Call ``func(Path(path), Path(out_dir), **kwargs)`` in a fresh ``out_dir``
    (``func``: the function or :func:`pickled` bytes of it); the row of the index it
    makes: status, seconds, worker, error, the returned values. ``source``: the name of
    the function's file, for errors raised in its code (shipped by value, its frames
    have no file name)."""
    where = worker or _worker_name()
    out = Path(out_dir)
    t0 = time.perf_counter()
    try:
        if isinstance(func, bytes):
            func = _unpickle(func)
        if out.exists():  # a failed or overwritten file's earlier output
            shutil.rmtree(out)
        out.mkdir(parents=True)
        returned = func(Path(path), out, **kwargs)
        values = encode(returned)
    except BadResult as err:
        return _row(FAILED, t0, where, str(err))
    except (Exception, SystemExit) as err:  # the user's code: whatever it raises is a row
        return _row(FAILED, t0, where, error_line(err, source))
    return _row(OK, t0, where, "", values)


def _row(status: str, t0: float, worker: str, error: str,
         values: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"status": status, "seconds": round(time.perf_counter() - t0, 6), "worker": worker,
            "error": error, "values": values or {}, "t": time.time()}


MAX_ERROR = 500  # characters of an exception's message kept in the index


def error_line(err: BaseException, source: str = "") -> str:
    """The exception as the last line of its traceback reads (a message of several lines
    folded into one), with the innermost place it was raised:
    ``ValueError: bad header (segment.py line 12)``."""
    said = " ".join(str(err).split())
    if len(said) > MAX_ERROR:
        said = said[:MAX_ERROR] + "..."
    line = f"{type(err).__name__}: {said}" if said else type(err).__name__
    frames = traceback.extract_tb(err.__traceback__)
    if len(frames) > 1:  # frames[0] is run_one itself
        last = frames[-1]
        name = os.path.basename(last.filename)
        if name.startswith("<") and source:  # code shipped by value: "<dynamic-code>"
            name = source
        line += f" ({name} line {last.lineno})"
    return line


def _worker_name() -> str:
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    try:
        from distributed import get_worker

        w = get_worker()
    except (ImportError, ValueError):
        return node
    name = w.name if isinstance(w.name, str) else str(w.address)
    return f"{node} {name}"


def encode(returned: Any) -> dict[str, Any]:
    """The function's returned value as the row's values: a dict of names to numbers,
    strings and arrays (or None: no values). :class:`BadResult` says what is wrong."""
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):
        raise BadResult(f"the function returned a {type(returned).__name__}; expected a dict "
                        "(one row of the index) or None")
    values: dict[str, Any] = {}
    for key, value in returned.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise BadResult(f"the function returned key {key!r}; keys must be names "
                            "(letters, digits and _, not starting with a digit)")
        if key in RESERVED:
            raise BadResult(f"the function returned key {key!r}, a column the index has for "
                            f"every file ({', '.join(RESERVED)}); rename it")
        encoded = _value(key, value)
        if encoded is not None:
            values[key] = encoded
    return values


def _value(key: str, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (np.ndarray, list, tuple)):
        try:
            arr = np.asarray(value)
        except ValueError as err:  # a ragged list
            raise BadResult(f"the function returned {key!r}: not an array ({err})") from None
        if arr.dtype.kind not in "biuf":
            raise BadResult(f"the function returned {key!r}: an array of {arr.dtype}; the "
                            "index holds arrays of numbers or booleans")
        if arr.ndim == 0:
            return _value(key, arr[()])
        arr = np.ascontiguousarray(arr)
        return {ARRAY: [arr.dtype.str, list(arr.shape),
                        base64.b64encode(arr.tobytes()).decode("ascii")]}
    raise BadResult(f"the function returned {key!r} as a {type(value).__name__}; the index "
                    "holds numbers, strings, booleans and numpy arrays")


def decode(value: Any) -> Any:
    """A row value back: an array from its encoding, anything else as it is."""
    if isinstance(value, dict) and ARRAY in value:
        dtype, shape, data = value[ARRAY]
        return np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype)).reshape(shape)
    return value
