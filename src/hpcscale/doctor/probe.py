"""The doctor's probe job: the path a dask worker takes, tried with a tiny SLURM job.

:class:`Probe` writes a script that runs the profile's prologue and then the
workers' python on a compute node, which reports back over TCP to a port the
probe listens on at the scheduler's address (and into the job's output file,
for when it cannot connect). :meth:`Probe.run` submits it, waits for its
report, and cancels the job whatever happens, waiting until it has left
``squeue``. It judges nothing: :mod:`hpcscale.doctor` turns the
:class:`Outcome` into checks.
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from hpcscale import slurm
from hpcscale.config import profiles
from hpcscale.rundir import runs_dir
from hpcscale.slurm.directives import sbatch_directives

RESULT_TAG = "HPCSCALE_DOCTOR_RESULT "


class Ending(StrEnum):
    """How the probe job ended, as far as the doctor could see."""

    reported = "reported"  # its report came, by TCP or in its output file
    refused = "refused"  # sbatch refused it
    pending = "pending"  # still PENDING after start_timeout
    silent = "silent"  # ran run_timeout without a report
    vanished = "vanished"  # left the queue without a report


@dataclass(frozen=True)
class Outcome:
    """What became of a probe job; it has left the queue by now."""

    ending: Ending
    job_id: str  # "" when sbatch refused it
    # sbatch's refusal (refused), SLURM's reason (pending), the job's nodes (silent)
    detail: str
    report: dict[str, Any] | None  # what the probe sent; "via": "file" when read from its output
    waited: float  # seconds it waited in the queue (at least 1)
    directory: Path  # its script and output
    listened: str  # "address:port" the probe was to connect to; "" when nothing listened
    listen_error: str  # why nothing could listen at the scheduler's address ("" if it did)
    stderr: str  # the last line of its error output


class Probe:
    """One probe job of a SLURM profile; :meth:`run` it once.

    ``address``: where the scheduler would listen (None: not known, and the probe
    only reports into its output file); ``max_time``: the shortest MaxTime of the
    profile's partitions in seconds (None: unlimited); ``say`` hears about the job
    while it is waited for.
    """

    def __init__(self, settings: profiles.SlurmSettings, *, address: str | None,
                 max_time: int | None, say: Callable[[str], None],
                 start_timeout: float = 60.0, run_timeout: float = 60.0,
                 modules: tuple[str, ...] = ()) -> None:
        self.s, self.address, self.max_time, self.say = settings, address, max_time, say
        self.modules = modules  # a user's functions' modules, to import on the node
        self.start_timeout, self.run_timeout = start_timeout, run_timeout
        self.token = secrets.token_hex(3)
        self.name = f"hpcscale-doctor-{self.token}"
        self.dir = runs_dir() / f"doctor-{self.token}"  # must be visible on the nodes too
        self.port = 0

    def run(self) -> Outcome:
        """Listen, submit, wait for the report; the job is always cancelled and gone after."""
        self.dir.mkdir(parents=True, mode=0o700)
        srv: socket.socket | None = None
        listen_error = ""
        if self.address:
            try:
                srv = socket.create_server((self.address, 0))
                srv.settimeout(1.0)
                self.port = srv.getsockname()[1]
            except OSError as err:
                listen_error = str(err)
        job_id = ""
        try:
            try:
                job_id = self.submit(self.address or "" if srv else "")
            except slurm.SlurmCommandError as err:
                refusal = err.stderr.strip() or str(err)
                ending, detail, got, waited = Ending.refused, refusal, None, 0.0
            else:
                ending, detail, got, waited = self.wait(job_id, srv)
        finally:
            if srv is not None:
                srv.close()
            # by name too: sbatch may have queued it before an interrupt reached us
            try:
                queued = set(slurm.queue(name=self.name))
            except slurm.SlurmUnavailable:
                queued = set()  # no answer: cancel by id (scancel has its own retries)
            ids = {job_id, *queued} - {""}
            slurm.cancel(ids)
            _wait_gone(ids)
        return Outcome(ending, job_id, detail, got, waited, self.dir,
                       f"{self.address}:{self.port}" if srv else "", listen_error,
                       tail(self.dir / "probe.err"))

    def discard(self) -> None:
        """Remove the probe's script and output."""
        shutil.rmtree(self.dir, ignore_errors=True)

    def script(self, host: str) -> str:
        """Bash: the prologue, then the workers' python runs _PROBE_PY (or bash reports why not)."""
        dirs = {"runs directory": str(self.dir)}
        for key in ("local_directory", "log_directory"):
            if getattr(self.s, key):
                dirs[key.replace("_", " ")] = getattr(self.s, key)
        iface = self.s.worker_interface or self.s.interface or ""
        args = shlex.join([self.token, host, str(self.port), iface, json.dumps(dirs),
                           json.dumps(list(self.modules))])
        send = f'    echo "$line" 2>/dev/null >/dev/tcp/{host}/{self.port}' if host else "    :"
        return "\n".join([
            "#!/usr/bin/env bash", f"# hpcscale doctor's probe {self.name}", "{",
            *(f"    {p}" for p in self.s.prologue), "    :", "}",
            # unquoted, as dask-jobqueue writes it into the workers' job script
            f"{self.s.python or sys.executable} - {args} <<'HPCSCALE_PROBE'",
            _PROBE_PY.strip(), "HPCSCALE_PROBE", "rc=$?", 'if [ "$rc" -ne 0 ]; then',
            _FALLBACK.replace("TOKEN", self.token), f'    echo "{RESULT_TAG}$line"', send,
            "fi", ""])

    def submit(self, host: str) -> str:
        """Submit the job (1 core, 256M, a minute or two); its id. SlurmCommandError if refused."""
        path = self.dir / "probe.sh"
        path.write_text(self.script(host), encoding="utf-8")
        s = self.s
        head = sbatch_directives(
            s, job_name=self.name, walltime=max(60, min(120, self.max_time or 120)), cpus=1,
            memory="256M",
            files=[f"--output={self.dir / 'probe.out'}", f"--error={self.dir / 'probe.err'}"])
        cmd = ["sbatch", "--parsable", *head, str(path)]
        job_id = slurm.run(cmd).strip().split(";")[0]
        self.say(f"probe job {job_id} submitted; it may wait {self.start_timeout:.0f} s to start")
        return job_id

    def wait(self, job_id: str,
             srv: socket.socket | None) -> tuple[Ending, str, dict[str, Any] | None, float]:
        """Until the probe reports (by TCP, else in its output file), ends, or times out:
        how it ended, the detail of :class:`Outcome`, its report, the seconds it waited."""
        t0 = time.monotonic()
        started: float | None = None
        while True:
            if srv is None:
                time.sleep(1.0)
            got = _accept(srv, self.token) if srv else None
            now = time.monotonic()
            try:
                state = None if got else slurm.queue([job_id]).get(job_id)
            except slurm.SlurmUnavailable:
                if now - t0 > self.start_timeout + self.run_timeout:
                    raise  # SLURM has not answered for longer than the probe may take
                continue  # no answer is not "the probe ended": ask again
            if state is not None and state.state != "PENDING":
                got = self.from_file()  # a probe that cannot connect reports only there
            if state is None or got is not None:  # reported, or ended: maybe in its file
                got = got or (_accept(srv, self.token) if srv else None) or self.from_file()
                waited = max(1.0, (started or now) - t0)
                return (Ending.reported, "", got, waited) if got is not None else \
                    (Ending.vanished, "", None, waited)
            if state.state == "PENDING" and now - t0 > self.start_timeout:
                return Ending.pending, state.reason, None, now - t0
            if state.state != "PENDING" and started is None:
                started = now
                self.say(f"probe job {job_id} {state.state} on {state.nodes}")
            if started is not None and now - started > self.run_timeout:
                return Ending.silent, state.nodes, None, started - t0

    def from_file(self) -> dict[str, Any] | None:
        """The report the probe wrote into its output file, if it did."""
        try:
            text = (self.dir / "probe.out").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        lines = [ln for ln in text.splitlines() if ln.startswith(RESULT_TAG)]
        got = parse(lines[-1][len(RESULT_TAG):], self.token) if lines else None
        if got is not None:
            got["via"] = "file"
        return got


def _accept(srv: socket.socket, token: str) -> dict[str, Any] | None:
    """One connection's JSON line, or None after the server's timeout."""
    try:
        conn, _ = srv.accept()
    except OSError:  # TimeoutError included
        return None
    data = b""
    with conn:
        conn.settimeout(5.0)
        try:
            while b"\n" not in data and len(data) < 1 << 16:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return None
    return parse(data.decode("utf-8", "replace"), token)


def parse(text: str, token: str) -> dict[str, Any] | None:
    """The probe's JSON report in ``text``, if it carries ``token``."""
    try:
        got = json.loads(text.strip().splitlines()[0]) if text.strip() else None
    except ValueError:
        return None
    # Anyone on the network may connect to the port: only our probe knows the token.
    return got if isinstance(got, dict) and got.get("token") == token else None


def tail(path: Path) -> str:
    """The last line of a file (at most 200 characters); "" if none."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _wait_gone(job_ids: set[str], timeout: float = 15.0) -> None:
    """After scancel: wait until the jobs have left squeue (COMPLETING takes a moment)."""
    end = time.monotonic() + timeout
    while job_ids and time.monotonic() < end:
        try:
            if not slurm.queue(job_ids):
                return
        except slurm.SlurmUnavailable:
            pass  # unknown: ask again until the deadline
        time.sleep(0.5)


# What bash reports when the workers' python did not run (JSON in a shell string;
# /proc/net/dev, unlike /sys/class/net, is the job's own network namespace's).
_FALLBACK = r'''    nics=$(awk -F: 'NR > 2 {print $1}' /proc/net/dev | tr -d ' ' | tr '\n' ' ')
    line="{\"token\": \"TOKEN\", \"host\": \"${SLURMD_NODENAME:-$(hostname)}\", \
\"python_rc\": $rc, \"sys_interfaces\": \"$nics\"}"'''

# Runs on the compute node under the workers' python, which may be the wrong one:
# plain Python 3, and every failure is reported, never raised.
_PROBE_PY = r'''
import json, os, socket, sys
token, host, port, iface, dirs, modules = sys.argv[1:7]
r = {"token": token, "host": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
     "hostname": socket.gethostname(), "python": sys.executable, "dirs": {}}
try:
    import hpcscale
    r["hpcscale"] = hpcscale.__version__
except Exception as e:
    r["hpcscale_error"] = "%s: %s" % (type(e).__name__, e)
r["modules"] = {}
for module in json.loads(modules):
    try:
        __import__(module)
        r["modules"][module] = ""
    except BaseException as e:
        r["modules"][module] = ("%s: %s" % (type(e).__name__, e)).strip().splitlines()[-1]
try:
    import psutil
    r["interfaces"] = dict((n, [a.address for a in v if a.family == socket.AF_INET])
                           for n, v in psutil.net_if_addrs().items())
except Exception:
    r["interfaces"] = dict((n, None) for _, n in socket.if_nameindex())
for what, path in json.loads(dirs).items():
    path = os.path.expanduser(os.path.expandvars(path))
    up = path
    while not os.path.exists(up) and os.path.dirname(up) != up:
        up = os.path.dirname(up)
    r["dirs"][what] = [path, os.path.isdir(path), os.access(up, os.W_OK | os.X_OK)]
conn = None
if host:
    try:
        conn = socket.create_connection((host, int(port)), timeout=10)
        r["connect"] = ""
    except OSError as e:
        r["connect"] = str(e) or type(e).__name__
line = json.dumps(r)
print("HPCSCALE_DOCTOR_RESULT " + line)
sys.stdout.flush()
if conn is not None:
    conn.sendall((line + "\n").encode())
    conn.close()
'''
