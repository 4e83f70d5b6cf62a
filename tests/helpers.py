"""Helpers the tests share (import them with ``from helpers import ...``); the fixtures
are in conftest.py."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "golden"


def invoke_in_process(*args: str) -> tuple[int, str, str]:
    """Run ``hpcscale ARGS`` in-process outside of a test function (module fixtures have
    no capsys): exit code, stdout, stderr."""
    from hpcscale.cli import main, render

    out, err = io.StringIO(), io.StringIO()
    render.OPTIONS.__init__()  # type: ignore[misc]
    old_argv = sys.argv
    sys.argv = ["hpcscale", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
    return code, out.getvalue(), err.getvalue()


def write_profile(directory: Path, name: str, text: str, mode: int = 0o644) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


class CliResult:
    """What ``hpcscale ARGS`` did: exit code, stdout, stderr."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


# The type of the ``cli`` fixture: ``cli("plan", "job.toml") -> CliResult``.
Cli = Callable[..., CliResult]


Command = tuple[tuple[str, ...], object]


def cli_commands(group: Any, prefix: tuple[str, ...] = ()) -> list[Command]:
    """Every command of a Typer app (sub-apps included) with its callback."""
    found: list[Command] = []
    for info in group.registered_commands:
        name = info.name or (info.callback.__name__.rstrip("_") if info.callback else "")
        found.append(((*prefix, name), info.callback))
    for sub in group.registered_groups:
        assert sub.typer_instance is not None
        found += cli_commands(sub.typer_instance, (*prefix, str(sub.name)))
    return found


def assert_golden(path: Path, got: str, what: str) -> None:
    """Compare ``got`` with the golden file ``path``; HPCSCALE_UPDATE_GOLDEN=1 rewrites it.

    On a difference the message says how to accept an intended change.
    """
    if os.environ.get("HPCSCALE_UPDATE_GOLDEN") == "1":
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8"), (
        f"{what} differs from {path}; if intended, rerun the test with "
        "HPCSCALE_UPDATE_GOLDEN=1 and review the diff of tests/golden/"
    )


def apply_step(table: dict[str, Any], a: Any, chunks: Any,
               dims: tuple[str, ...] = ("t", "y", "x")) -> Any:
    """Apply one step (a job-spec table) to ``a`` chunked as given; check that what the
    step declares (``resolve``: chunks, shape, dtype) is what it computes; the values."""
    import dask.array as da
    import numpy as np

    from hpcscale.ops import ArrayInfo, parse_step

    arr = da.from_array(a, chunks=chunks)
    info = ArrayInfo.of(arr, dims[: a.ndim])
    step = parse_step(table, 1)
    out_info = step.resolve(info)
    out = step.apply(arr, info)
    assert out.chunks == out_info.chunks
    values = np.asarray(out.compute())
    assert values.shape == out_info.shape
    assert values.dtype == out_info.dtype
    return values


def blocking_zarr(path: Path, planes: int = 12) -> tuple[Any, Path, bytes]:
    """A float32 Zarr array of ``planes`` 64x64 planes, one chunk per plane, whose middle
    chunk is a named pipe: the task that reads it blocks until a test writes the
    chunk's bytes into the pipe (the returned payload), so a run on it is computing,
    and cannot end, until the test says so. Returns the data, the pipe, the payload."""
    import numpy as np
    import zarr

    data = np.random.default_rng(7).random((planes, 64, 64)).astype("float32")
    zarr.create_array(path, shape=data.shape, chunks=(1, 64, 64), dtype="float32")[...] = data
    chunk = path / "c" / str(planes // 2) / "0" / "0"
    payload = chunk.read_bytes()
    chunk.unlink()
    os.mkfifo(chunk)
    return data, chunk, payload


def fifo_reader(fifo: Path, timeout: float = 180) -> int:
    """Once a task has the pipe open to read it: a write end (kept open: closing it
    before the bytes are written would end the reader's read empty)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
        time.sleep(0.05)  # polling for the event "a task opened the chunk"


def feed_fifo(fifo: Path, payload: bytes, held: int) -> None:
    """Write the chunk to the task that reads it now (a second one, when the first
    one's worker was lost), then close every write end."""
    fd = fifo_reader(fifo)
    try:
        os.set_blocking(fd, True)
        os.write(fd, payload)
    finally:
        os.close(fd)
        os.close(held)


# A job spec of one step: the mean over the first axis (format with inp= and out=).
MEAN_SPEC = """
[input]
path = "{inp}"
[[steps]]
reduce = "mean"
axis = [0]
[output]
path = "{out}"
"""


def write_spec(path: Path, inp: Path | str, out: Path | str, template: str = MEAN_SPEC) -> Path:
    """Write a job spec (by default :data:`MEAN_SPEC`) reading ``inp`` and writing ``out``."""
    path.write_text(template.format(inp=inp, out=out), encoding="utf-8")
    return path


def login_only_module(directory: Path, name: str, source: str, user_sites: Path,
                      monkeypatch: Any, site: str = "noenv") -> str:
    """A module ``name`` that imports here but not on the compute nodes, and the site
    whose jobs do not see it: the module is in ``directory``, on this process's path
    and its PYTHONPATH (which sbatch hands to the jobs), and the site (testbed's
    profile) has a prologue that resets PYTHONPATH, as a login node's environment
    often differs from the nodes'. Returns the site's name."""
    import json

    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(source, encoding="utf-8")
    before = os.environ.get("PYTHONPATH", "")
    monkeypatch.syspath_prepend(str(directory))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(directory), before) if p))
    reset = f"export PYTHONPATH={before}" if before else "unset PYTHONPATH"
    write_profile(user_sites, site, f'extends = "testbed"\n[slurm]\n'
                  f"prologue = [{json.dumps(reset)}]\n")
    return site
