"""Shared fixtures. Every test runs with its own profile and run directories.

The SLURM tier (``@pytest.mark.slurm``) needs the testbed (``scripts/testbed
up``). Without it those tests are skipped with one loud line, except under
``CI=true``, where a testbed that is not up is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import hypothesis  # noqa: F401  (see below)
import pytest

from helpers import Cli, CliResult

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
    monkeypatch.setenv("HPCSCALE_STATE_DIR", str(base / "state"))  # calibrations
    monkeypatch.delenv("HPCSCALE_SITE_PATH", raising=False)
    monkeypatch.delenv("HPCSCALE_SITE", raising=False)
    # runs draw report.html before they return (not in a background child), so a test
    # reads it at once; tests/unit/run/test_report_child.py runs the child
    monkeypatch.setenv("HPCSCALE_REPORT_INLINE", "1")


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
        # an array's pending tasks are one line, 123_[4-9%3], which scancel refuses
        # (and then cancels nothing): cancel the array by its id
        ids = {ln.split()[0].split("_[", 1)[0] for ln in left}
        subprocess.run(["scancel", *sorted(ids)], check=False, env=env)
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


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    """Run ``hpcscale ARGS`` in-process through the real entry point (error handling included)."""
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
