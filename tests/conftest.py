"""Shared fixtures. Every test runs with its own profile and run directories.

The SLURM tier (``@pytest.mark.slurm``) needs the testbed (``scripts/testbed
up``). Without it those tests are skipped with one loud line, except under
``CI=true``, where a testbed that is not up is a failure.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401  (see below)
import pytest

# hypothesis' pytest plugin imports hypothesis lazily at the end of a session
# that did not use it; on CPython 3.11.7 that late ast.parse can fail with
# "AST constructor recursion depth mismatch" after distributed has run.
# Importing it here, at collection, avoids the late parse.

TESTBED_CONF = Path("/var/lib/hpcscale-testbed/etc/slurm.conf")
REPO = Path(__file__).resolve().parents[1]


def _testbed_problem() -> str | None:
    if not TESTBED_CONF.exists():
        return f"no testbed config at {TESTBED_CONF} (run: sudo scripts/testbed up)"
    if shutil.which("sinfo") is None:
        return "SLURM client commands (sinfo) not installed"
    env = dict(os.environ, SLURM_CONF=str(TESTBED_CONF))
    try:
        out = subprocess.run(["sinfo", "-h", "-p", "debug", "-o", "%D %t"], env=env,
                             capture_output=True, text=True, timeout=20, check=False)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip()}"
    if "idle" not in out.stdout and "mix" not in out.stdout and "alloc" not in out.stdout:
        return f"testbed nodes not up: {out.stdout.strip()!r}"
    return None


_PROBLEM: str | None = None
_CHECKED = False


def testbed_problem() -> str | None:
    global _PROBLEM, _CHECKED
    if not _CHECKED:
        _PROBLEM, _CHECKED = _testbed_problem(), True
    return _PROBLEM


def pytest_report_header(config: pytest.Config) -> str:
    problem = testbed_problem()
    if problem is None:
        return "SLURM testbed: up; the SLURM tier runs"
    if os.environ.get("CI") == "true":
        return f"SLURM testbed: NOT UP under CI=true -> the SLURM tier FAILS: {problem}"
    return f"!!! SLURM testbed: not up -> SLURM tier SKIPPED: {problem}"


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path_factory.mktemp("hpcscale-home")
    (base / "sites").mkdir(mode=0o755)
    monkeypatch.setenv("HPCSCALE_USER_SITES", str(base / "sites"))
    monkeypatch.setenv("HPCSCALE_RUNS_DIR", str(base / "runs"))
    monkeypatch.delenv("HPCSCALE_SITE_PATH", raising=False)
    monkeypatch.delenv("HPCSCALE_SITE", raising=False)


@pytest.fixture
def user_sites() -> Path:
    return Path(os.environ["HPCSCALE_USER_SITES"])


@pytest.fixture
def testbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The live SLURM testbed; fails under CI=true when it is not up, else skips."""
    problem = testbed_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"SLURM testbed required under CI=true: {problem}")
        pytest.skip(f"SLURM testbed not up: {problem}")
    monkeypatch.setenv("SLURM_CONF", str(TESTBED_CONF))
    yield TESTBED_CONF
    # No test may leave a job behind: look for the jobs of this test's runs
    # (named hpcscale-<run id>), whatever else shares the testbed.
    runs = Path(os.environ["HPCSCALE_RUNS_DIR"])
    names = [f"hpcscale-{p.name}" for p in runs.iterdir()] if runs.is_dir() else []
    if not names:
        return
    env = dict(os.environ, SLURM_CONF=str(TESTBED_CONF))

    def ours() -> list[str]:
        return subprocess.run(["squeue", "-h", "-o", "%i %j %T", "--name=" + ",".join(names)],
                              capture_output=True, text=True, check=False, env=env
                              ).stdout.splitlines()

    # COMPLETING: SLURM is already ending the job (hpcscale does not wait out
    # KillWait); any other state means the run left the job behind.
    left = [ln for ln in ours() if not ln.endswith(" COMPLETING")]
    if left:
        subprocess.run(["scancel", *[ln.split()[0] for ln in left]], check=False, env=env)
        pytest.fail(f"jobs left in squeue after the test: {left}")
    deadline = time.monotonic() + 30  # let them go before the next test counts jobs
    while ours() and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a disk that fills up on demand (mounting needs root, as CI runs)."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs",
                           str(mnt)], capture_output=True, text=True, check=False)
    if done.returncode:
        problem = f"cannot mount a tmpfs: {done.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


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
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run ``hpcscale ARGS`` in-process through the real entry point (error handling included)."""
    import sys

    from hpcscale.cli import main, render

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["hpcscale", *args])
        render.OPTIONS.__init__()  # type: ignore[misc]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


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
