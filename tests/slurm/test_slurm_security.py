"""The scheduler of a SLURM run is TLS-only with per-run credentials only its user
can read; another Unix user and plain TCP clients are refused."""

from __future__ import annotations

import dataclasses
import os
import shutil
import ssl
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil
import pytest
from distributed import Client

from hpcscale import backends, sizing
from hpcscale.config import profiles
from hpcscale.rundir import RunDir

pytestmark = pytest.mark.slurm

OTHER = "hpcscale-other"
# The system interpreter: a second user cannot run the venv's (under /root).
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="module")
def other_user() -> str:
    if os.getuid() != 0:
        pytest.skip("needs root to create a second Unix user")
    if subprocess.run(["id", OTHER], capture_output=True, check=False).returncode != 0:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", OTHER],
                       check=True)
    return OTHER


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own tmp root is 0700), so the
    only barrier a second user meets is the one hpcscale sets up."""
    base = Path(tempfile.mkdtemp(prefix="hpcscale-sec-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def scheduler(testbed: Path, open_dir: Path) -> Iterator[tuple[Any, Client, Path]]:
    run_dir = open_dir / "run"
    run_dir.mkdir(mode=0o755)
    prof = profiles.load("testbed").profile
    # no worker job: the scheduler alone is what these tests look at
    plan = dataclasses.replace(sizing.plan(prof, sizing.Workload(1, 1, 1, 1), 1), jobs=0)
    rd = RunDir("sectest", run_dir)
    with backends.start(prof, plan, job_name="hpcscale-sectest", run_dir=rd) as (c, cl):
        yield c, cl, run_dir


def _as_other(user: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", user, "--", SYSTEM_PYTHON, "-c",
                           textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                          check=False, cwd="/")


def test_scheduler_is_tls_and_credentials_are_private(scheduler) -> None:  # type: ignore[no-untyped-def]
    clus, client, run_dir = scheduler
    assert clus.scheduler_address.startswith("tls://")
    tls = run_dir / "tls"
    assert (tls.stat().st_mode & 0o777) == 0o700
    files = list(tls.iterdir())
    assert {f.name.split(".")[3] for f in files} == {"key", "cert", "ca_file"}
    assert all((f.stat().st_mode & 0o777) == 0o600 for f in files)
    # the run's own client, holding the credentials, is connected
    assert client.status == "running"
    assert client.run_on_scheduler(lambda: 42) == 42


def test_dashboard_listens_on_localhost_only(scheduler) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = scheduler
    port = urlparse(client.dashboard_link).port
    listening = [c.laddr for c in psutil.Process().net_connections(kind="tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
    assert listening, "dashboard port not found"
    assert {a.ip for a in listening} == {"127.0.0.1"}


def test_plain_tcp_client_is_refused(scheduler) -> None:  # type: ignore[no-untyped-def]
    clus, _, _ = scheduler
    addr = clus.scheduler_address.replace("tls://", "tcp://")
    with pytest.raises(OSError, match=r"Timed out|handshake|closed|refused|TLS|SSL"):
        Client(addr, timeout=5)


def test_second_user_cannot_connect(scheduler, other_user: str) -> None:  # type: ignore[no-untyped-def]
    clus, _, run_dir = scheduler
    host, port = clus.scheduler_address.removeprefix("tls://").rsplit(":", 1)
    probe = f"""
        import glob, os, socket, ssl, sys
        # 1. the run's credentials are out of reach
        try:
            os.listdir({str(run_dir / "tls")!r})
            print("READ-CREDENTIALS")
        except PermissionError:
            print("no-credentials")
        # 2. TLS without a client certificate signed by the run's CA is refused
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection(({host!r}, {port}), timeout=5) as raw:
                with ctx.wrap_socket(raw) as s:
                    s.sendall(b"x" * 64)
                    data = s.recv(64)
                    print("TLS-ACCEPTED" if data else "tls-closed")
        except (ssl.SSLError, ConnectionError, OSError) as e:
            print("tls-refused", type(e).__name__)
        # 3. plain TCP gets nothing it can speak to
        with socket.create_connection(({host!r}, {port}), timeout=5) as s:
            s.sendall(b"\\x00" * 64)
            s.settimeout(5)
            try:
                print("tcp-answer" if s.recv(64) else "tcp-closed")
            except (ConnectionError, TimeoutError, OSError) as e:
                print("tcp-closed", type(e).__name__)
    """
    r = _as_other(other_user, probe)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split()
    assert "no-credentials" in lines, r.stdout
    assert "READ-CREDENTIALS" not in lines
    assert "TLS-ACCEPTED" not in lines
    assert any(ln in ("tls-refused", "tls-closed") for ln in lines), r.stdout
    # the scheduler saw no client but ours
    clients = clus.scheduler_info.get("clients", None)
    assert clients is None or len(clients) <= 1


def test_probe_would_detect_readable_credentials(  # type: ignore[no-untyped-def]
    scheduler, other_user: str, open_dir: Path
) -> None:
    """Control for the test above: with world-readable credentials the probe says so."""
    _, _, run_dir = scheduler
    leaked = open_dir / "leaked"
    shutil.copytree(run_dir / "tls", leaked)
    leaked.chmod(0o755)
    r = _as_other(other_user, f"import os; os.listdir({str(leaked)!r}); print('READ')")
    assert r.stdout.strip() == "READ", r.stderr
    assert ssl.OPENSSL_VERSION  # the probe's TLS client exists on this Python
