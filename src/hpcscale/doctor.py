"""``hpcscale doctor``: check what a newcomer's set-up usually gets wrong, and say what to fix.

Every check is reported, in order (``ok``, ``FAIL`` with a fix, or ``skip``
with the reason): SLURM's commands and controller, the profile, its
partition, size and account, the scheduler's interface on this machine, the
directories a run writes, and a tiny probe job. The probe runs the profile's
prologue and the workers' python on a compute node and reports back over TCP
to a port the doctor listens on at the scheduler's address: the path a dask
worker takes. The probe is cancelled whatever happens, and waited for until
it has left ``squeue``.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hpcscale import __version__, profiles, slurm, units
from hpcscale import run as runlib
from hpcscale import site as sitelib
from hpcscale.errors import ProfileError, SubmissionError
from hpcscale.rundir import runs_dir

SLURM_COMMANDS = ("sbatch", "squeue", "scontrol", "scancel")
RESULT_TAG = "HPCSCALE_DOCTOR_RESULT "
_BUSY = ("Resources", "Priority", "None", "BeginTime")  # pending reasons that pass by waiting


class Status(StrEnum):
    ok = "ok"
    fail = "FAIL"
    skip = "skip"


@dataclass(frozen=True)
class Check:
    """One line of the report; ``fix`` says what to change when ``status`` is FAIL."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class Report:
    site: str
    checks: list[Check] = field(default_factory=list)
    probe: dict[str, Any] | None = None  # what the probe job reported, as it sent it

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status is Status.fail]

    def add(self, name: str, status: Status, detail: str, fix: str = "") -> None:
        self.checks.append(Check(name, status, detail, fix))

    def lines(self) -> list[str]:
        out = []
        for c in self.checks:
            out.append(f"{c.status.value:<5} {c.name:<20} {c.detail}")
            if c.fix:
                out.append(f"{'':<26} fix: {c.fix}")
        return out

    def as_json(self) -> dict[str, Any]:
        return {"site": self.site, "ok": not self.failed,
                "checks": [asdict(c) for c in self.checks], "probe": self.probe}


def diagnose(
    site: str | None, *, trust: bool = False, probe: bool = True, start_timeout: float = 60.0,
    run_timeout: float = 60.0, on_status: Callable[[str], None] | None = None,
) -> Report:
    """Check everything a run on ``site`` needs; submit the probe job unless ``probe`` is False.

    Raises only for usage errors (exit 2): no site where SLURM is available, a
    site that is not a known profile. Every other problem is a FAIL in the
    report. ``on_status`` hears about the probe job while it is waited for.
    """
    name = runlib.choose_site(site)
    if name not in profiles.discover():
        profiles.load(name)  # raises the usual "not a known profile (known: ...)"
    report = Report(name)
    report.add("python", Status.ok, f"{sys.executable} (Python {sys.version.split()[0]}), "
               f"hpcscale {__version__}")
    _dir_check(report, "runs directory", runs_dir(),
               "set HPCSCALE_RUNS_DIR to a directory you can write, on a filesystem the "
               "compute nodes share (worker logs and TLS credentials go there)")
    try:
        res = profiles.load(name, trust=trust)
    except ProfileError as err:
        report.add("profile", Status.fail, str(err), "correct the profile as the message says")
        report.add("slurm", Status.skip, "the profile does not load")
        return report
    report.add("profile", Status.ok, f"{name} ({res.profile.kind}) from "
               f"{' <- '.join(map(str, res.files))}")
    s = res.profile.slurm
    if s is None:
        local = res.profile.local.local_directory
        path = Path(os.path.expandvars(local)).expanduser() if local else Path(
            tempfile.gettempdir())
        _dir_check(report, "local directory", path, "set [local] local_directory = a "
                   f"directory you can write, in {res.files[0]}")
        report.add("slurm", Status.skip, f"site {name} runs on this machine: SLURM checks skipped")
        return report
    _Slurm(report, res, s, on_status or (lambda _text: None)).run(probe, start_timeout,
                                                                   run_timeout)
    return report


def _dir_check(report: Report, name: str, path: Path, fix: str) -> bool:
    """Whether ``path`` is a writable directory, or one that can be made."""
    up = path
    while not up.exists() and up.parent != up:
        up = up.parent
    if path.exists() and not path.is_dir():
        report.add(name, Status.fail, f"{path} is not a directory", fix)
    elif not os.access(up, os.W_OK | os.X_OK):
        report.add(name, Status.fail, f"{path}: {up} is not writable by you", fix)
    else:
        note = "" if path.exists() else f" (made when needed: {up} is writable)"
        report.add(name, Status.ok, f"{path} is writable{note}")
        return True
    return False


def interfaces() -> dict[str, list[str]]:
    """This machine's network interfaces and their IPv4 addresses."""
    import psutil

    return {name: [a.address for a in addrs if a.family == socket.AF_INET]
            for name, addrs in psutil.net_if_addrs().items()}


def _describe(found: Mapping[str, list[str] | None]) -> tuple[str, str]:
    """``("eth0 10.0.0.5, lo 127.0.0.1; without IPv4: veth1", "eth0")``: all, and the usable.

    ``None`` is an interface whose addresses are unknown (usable, as far as we know).
    """
    listed = sorted(n for n, a in found.items() if a or a is None)
    bare = sorted(n for n, a in found.items() if a == [])
    shown = ", ".join(f"{n} {', '.join(found[n] or [])}".strip() for n in listed) or "none"
    usable = ", ".join(n for n in listed if not _unusable(found, n, "")) or "none"
    return shown + (f"; without IPv4: {', '.join(bare)}" if bare else ""), usable


def _unusable(found: Mapping[str, list[str] | None], name: str, where: str) -> str:
    """Why interface ``name`` cannot carry dask's traffic between machines ("" if it can)."""
    addrs = found.get(name, [])
    if name not in found:
        return f"does not exist {where}"
    if addrs == []:
        return f"has no IPv4 address {where}"
    if addrs and all(a.startswith("127.") for a in addrs):
        return f"is the loopback ({addrs[0]}) {where}, which no other machine reaches"
    return ""


class _Slurm:
    """The checks of a SLURM profile, in order; the probe only when the essentials pass."""

    def __init__(self, report: Report, res: profiles.ResolvedProfile,
                 s: profiles.SlurmSettings, say: Callable[[str], None]) -> None:
        self.report, self.res, self.s, self.say = report, res, s, say
        self.blockers: list[str] = []  # why the probe job is not submitted
        self.parts: dict[str, slurm.Partition] = {}
        self.address: str | None = None  # where the scheduler would listen

    def file(self, key: str) -> Path:
        """The profile file a ``slurm.<key>`` is set in (the named profile if unset)."""
        return self.res.sources.get(f"slurm.{key}", self.res.files[0])

    def fail(self, name: str, detail: str, fix: str, *, blocks: str = "") -> None:
        self.report.add(name, Status.fail, detail, fix)
        if blocks:
            self.blockers.append(blocks)

    def run(self, probe: bool, start_timeout: float, run_timeout: float) -> None:
        if self.commands() and self.controller():
            self.partition()
            self.accounting()
        self.interface()
        log_dir = self.s.log_directory
        if log_dir and "$" in os.path.expandvars(log_dir):
            self.report.add("log directory", Status.skip, f"{log_dir}: its variables are set "
                            "only in the job; the probe checks it")
        elif log_dir and not _dir_check(
                self.report, "log directory", Path(os.path.expandvars(log_dir)).expanduser(),
                f"set log_directory = a directory you can write in {self.file('log_directory')}"):
            self.blockers.append("the log directory is not writable")
        if any(c.name == "runs directory" and c.status is Status.fail
               for c in self.report.checks):
            self.blockers.append("the runs directory is not writable")
        if not probe:
            self.report.add("probe job", Status.skip, "--dry-run: nothing submitted")
        elif self.blockers:
            self.report.add("probe job", Status.skip, "not submitted: " + "; ".join(self.blockers))
        else:
            _Probe(self, start_timeout, run_timeout).run()

    def commands(self) -> bool:
        missing = [c for c in SLURM_COMMANDS if shutil.which(c) is None]
        if missing:
            self.fail("slurm commands", f"not on PATH: {', '.join(missing)}",
                      "run hpcscale on the cluster's login node, or put SLURM's commands on "
                      "PATH (often: module load slurm)", blocks="SLURM's commands are missing")
            return False
        where = sorted({str(Path(shutil.which(c) or c).parent) for c in SLURM_COMMANDS})
        self.report.add("slurm commands", Status.ok,
                        f"{', '.join(SLURM_COMMANDS)} in {', '.join(where)}")
        return True

    def controller(self) -> bool:
        try:
            said = slurm.run(["scontrol", "ping"], timeout=15).strip()
            self.parts = slurm.partitions()
        except SubmissionError as err:
            conf = os.environ.get("SLURM_CONF", "unset, so /etc/slurm/slurm.conf")
            self.fail("slurm controller", str(err), "check that slurmctld runs and that "
                      f"SLURM_CONF ({conf}) is this cluster's slurm.conf",
                      blocks="the SLURM controller does not answer")
            return False
        said = said.splitlines()[-1] if said else "scontrol ping answered"
        self.report.add("slurm controller", Status.ok,
                        f"{said}; partitions: {', '.join(sorted(self.parts)) or 'none'}")
        return True

    def partition(self) -> None:
        names = self.s.partition.split(",")
        missing = [n for n in names if n not in self.parts]
        known = ", ".join(sorted(self.parts)) or "none"
        fix = f"set partition = one of: {known} in {self.file('partition')}"
        if missing:
            self.fail("partition", f"{', '.join(map(repr, missing))} does not exist "
                      f"(partitions: {known})", fix, blocks=f"partition {missing[0]} is missing")
            return
        down = [n for n in names if self.parts[n].state != "UP"]
        if down:
            self.fail("partition", f"{down[0]} is {self.parts[down[0]].state}: jobs would wait",
                      fix + " that is UP", blocks=f"partition {down[0]} is not up")
            return
        self.report.add("partition", Status.ok, f"{self.s.partition} exists and is UP")
        # Cores, memory and walltime against the partition are `site check`'s; its
        # partition and interface findings are said above and below.
        for f in sitelib.check(self.res.profile):
            if not f.message.startswith(("partition ", "workers reach ")):
                self.report.add("partition fit", Status.ok if f.ok else Status.fail, f.message,
                                "" if f.ok else f"lower it in {self.res.files[0]}, or choose a "
                                "partition that allows it")

    def accounting(self) -> None:
        s, user = self.s, slurm._user()
        if not (s.account or s.qos):
            self.report.add("account/qos", Status.skip, "neither set: SLURM uses your defaults")
            return
        if shutil.which("sacctmgr") is None:
            self.report.add("account/qos", Status.skip, "sacctmgr not found; the probe job "
                            "shows whether SLURM accepts them")
            return
        try:
            out = slurm.run(["sacctmgr", "--noheader", "--parsable2", "show", "assoc", "where",
                             f"user={user}", "format=Account,QOS"], timeout=10)
        except slurm.SlurmCommandError as err:
            said = (err.stderr or str(err)).strip().splitlines() or ["sacctmgr failed"]
            self.report.add("account/qos", Status.skip, f"no accounting to ask ({said[0]}); "
                            "the probe job shows whether SLURM accepts them")
            return
        assoc = [ln.split("|") for ln in out.splitlines() if ln.count("|") == 1]
        if not assoc:
            self.report.add("account/qos", Status.skip, f"sacctmgr lists no associations of "
                            f"{user}; the probe job shows whether SLURM accepts them")
            return
        accounts = sorted({a for a, _ in assoc})
        if s.account and s.account not in accounts:
            self.fail("account", f"{s.account!r} is not one of your accounts "
                      f"({', '.join(accounts)})", f"set account = one of: {', '.join(accounts)} "
                      f"in {self.file('account')}", blocks=f"account {s.account} is not yours")
        elif s.account:
            self.report.add("account", Status.ok, f"{s.account} is one of your accounts")
        qos = sorted({q for a, qs in assoc if a == (s.account or a) for q in qs.split(",") if q})
        if s.qos and s.qos not in qos:
            self.fail("qos", f"{s.qos!r} is not allowed for you ({', '.join(qos) or 'none'})",
                      f"set qos = one of: {', '.join(qos)} in {self.file('qos')}, or remove it",
                      blocks=f"qos {s.qos} is not allowed")
        elif s.qos:
            self.report.add("qos", Status.ok, f"{s.qos} is allowed for you")

    def interface(self) -> None:
        found, name = interfaces(), self.s.interface
        if name is None:
            from distributed.utils import get_ip

            self.address = get_ip()  # type: ignore[no-untyped-call]
            self.report.add("interface", Status.ok, "not set: the scheduler listens on "
                            f"{self.address}, the address of this machine's default route")
        elif why := _unusable(found, name, "here"):
            shown, usable = _describe(found)
            self.fail("interface", f"{name!r} {why} (interfaces: {shown})",
                      f"set interface = one of: {usable} in {self.file('interface')}")
        else:
            self.address = found[name][0]
            self.report.add("interface", Status.ok, f"{name} has {self.address}")


class _Probe:
    """Submit the probe job, wait for its report, always cancel it."""

    def __init__(self, ctx: _Slurm, start_timeout: float, run_timeout: float) -> None:
        self.ctx, self.s, self.report = ctx, ctx.s, ctx.report
        self.start_timeout, self.run_timeout = start_timeout, run_timeout
        self.token = secrets.token_hex(3)
        self.name = f"hpcscale-doctor-{self.token}"
        self.dir = runs_dir() / f"doctor-{self.token}"  # must be visible on the nodes too
        self.port = 0

    def run(self) -> None:
        failed = len(self.report.failed)
        self.dir.mkdir(parents=True, mode=0o700)
        srv: socket.socket | None = None
        if self.ctx.address:
            try:
                srv = socket.create_server((self.ctx.address, 0))
                srv.settimeout(1.0)
                self.port = srv.getsockname()[1]
            except OSError as err:
                self.ctx.fail("scheduler port", f"cannot listen on {self.ctx.address}: {err}",
                              f"set interface = another one in {self.ctx.file('interface')}")
        job_id, got = "", None
        try:
            job_id = self.submit(self.ctx.address or "" if srv else "")
            got = self.wait(job_id, srv) if job_id else None
        finally:
            if srv is not None:
                srv.close()
            # by name too: sbatch may have queued it before an interrupt reached us
            ids = {job_id, *slurm.queue(name=self.name)} - {""}
            slurm.cancel(ids)
            _wait_gone(ids)
        if got is not None:
            self.judge(got)
        if len(self.report.failed) == failed:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            self.ctx.say(f"the probe's script and output are kept in {self.dir}")

    def script(self, host: str) -> str:
        """Bash: the prologue, then the workers' python runs _PROBE_PY (or bash reports why not)."""
        dirs = {"runs directory": str(self.dir)}
        for key in ("local_directory", "log_directory"):
            if getattr(self.s, key):
                dirs[key.replace("_", " ")] = getattr(self.s, key)
        iface = self.s.worker_interface or self.s.interface or ""
        args = shlex.join([self.token, host, str(self.port), iface, json.dumps(dirs)])
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
        path = self.dir / "probe.sh"
        path.write_text(self.script(host), encoding="utf-8")
        max_time = min((self.ctx.parts[p].max_time or 120 for p in self.s.partition.split(",")),
                       default=120)
        s = self.s
        cmd = ["sbatch", "--parsable", f"--job-name={self.name}", f"--partition={s.partition}",
               *([f"--account={s.account}"] if s.account else []),
               *([f"--qos={s.qos}"] if s.qos else []),
               "--nodes=1", "--ntasks=1", "--cpus-per-task=1", "--mem=256M",
               f"--time={units.format_walltime(max(60, min(120, max_time)))}",
               f"--output={self.dir / 'probe.out'}", f"--error={self.dir / 'probe.err'}",
               *s.extra_directives, str(path)]
        try:
            job_id = slurm.run(cmd).strip().split(";")[0]
        except slurm.SlurmCommandError as err:
            self.ctx.fail("probe job", f"sbatch refused it: {err.stderr.strip() or err}",
                          "the profile asks for what SLURM does not allow here (partition, "
                          f"account, qos, extra_directives); correct {self.ctx.res.files[0]}")
            return ""
        self.ctx.say(f"probe job {job_id} submitted; it may wait {self.start_timeout:.0f} s "
                     "to start")
        return job_id

    def wait(self, job_id: str, srv: socket.socket | None) -> dict[str, Any] | None:
        """The probe's report (by TCP, else from its output file), or None after a FAIL."""
        t0 = time.monotonic()
        started: float | None = None
        while True:
            if srv is None:
                time.sleep(1.0)
            got = _accept(srv, self.token) if srv else None
            now = time.monotonic()
            state = None if got else slurm.queue([job_id]).get(job_id)
            if state is not None and state.state != "PENDING":
                got = self.from_file()  # a probe that cannot connect reports only there
            if state is None or got is not None:  # reported, or ended: maybe in its file
                got = got or (_accept(srv, self.token) if srv else None) or self.from_file()
                if got is None:
                    err = _tail(self.dir / "probe.err")
                    self.ctx.fail("probe job", f"job {job_id} ended without a report"
                                  f"{f' ({err})' if err else ''}",
                                  f"read {self.dir}/probe.err; is {runs_dir()} on a filesystem "
                                  "the compute nodes share?")
                    return None
                waited = max(1.0, (started or now) - t0)
                self.report.add("probe job", Status.ok, f"job {job_id} ran on "
                                f"{got.get('host', '?')} (started within {waited:.0f} s)")
                return got
            if state.state == "PENDING" and now - t0 > self.start_timeout:
                self.ctx.fail(
                    "probe job", f"job {job_id} still PENDING after {self.start_timeout:.0f} s "
                    f"(reason: {state.reason}); cancelled",
                    "the partition is busy: run again later, or with a longer --timeout"
                    if state.reason in _BUSY else f"SLURM holds it for {state.reason} "
                    f"(`scontrol show job` says more); correct {self.ctx.res.files[0]}")
                return None
            if state.state != "PENDING" and started is None:
                started = now
                self.ctx.say(f"probe job {job_id} {state.state} on {state.nodes}")
            if started is not None and now - started > self.run_timeout:
                self.ctx.fail("probe job", f"job {job_id} ran on {state.nodes} for "
                              f"{self.run_timeout:.0f} s without a report; cancelled",
                              f"does a prologue line wait for something? {self.dir}/probe.out "
                              "and probe.err say how far it got")
                return None

    def from_file(self) -> dict[str, Any] | None:
        try:
            text = (self.dir / "probe.out").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        lines = [ln for ln in text.splitlines() if ln.startswith(RESULT_TAG)]
        got = _parse(lines[-1][len(RESULT_TAG):], self.token) if lines else None
        if got is not None:
            got["via"] = "file"
        return got

    def judge(self, got: dict[str, Any]) -> None:
        self.report.probe = got
        add, fail, s, file = self.report.add, self.ctx.fail, self.s, self.ctx.file
        host = got.get("host", "?")
        if "python_rc" in got:
            err = _tail(self.dir / "probe.err")
            fail("node python", f"{s.python or sys.executable} did not run on {host} (exit "
                 f"{got['python_rc']}{f': {err}' if err else ''})", "set python = the workers' "
                 f"python on the nodes in {file('python')}, or load it in prologue")
        elif got.get("hpcscale") == __version__:
            add("node python", Status.ok, f"{got['python']} on {host} imports hpcscale "
                f"{__version__}, as here")
        else:
            said = (f"has hpcscale {got['hpcscale']}, here {__version__}" if "hpcscale" in got
                    else f"cannot import hpcscale ({got.get('hpcscale_error')})")
            fail("node python", f"{got.get('python')} on {host} {said}",
                 f"install hpcscale {__version__} for it, or set python = the right one in "
                 f"{file('python')} (or activate it in prologue)")
        found = got.get("interfaces") or dict.fromkeys(got.get("sys_interfaces", "").split())
        iface = s.worker_interface or s.interface
        key = "worker_interface" if s.worker_interface else "interface"
        if not iface:
            add("node interface", Status.skip, "not set: workers use their default address")
        elif why := _unusable(found, iface, f"on {host}"):
            shown, usable = _describe(found)
            fail("node interface", f"{key} {iface!r} {why} (interfaces there: {shown})",
                 f"set worker_interface = one of: {usable} in {file(key)}")
        else:
            add("node interface", Status.ok, f"{iface} on {host} has "
                f"{', '.join(found[iface] or ['an address'])}")
        for what, (path, exists, writable) in (got.get("dirs") or {}).items():
            if what == "runs directory" and not (exists and writable):
                fail("node runs directory", f"{path} is not "
                     f"{'writable' if exists else 'visible'} on {host}", "set HPCSCALE_RUNS_DIR "
                     "to a directory you can write on a filesystem the nodes share")
            elif writable:
                add(f"node {what}", Status.ok, f"{path} is writable on {host}")
            else:
                fail(f"node {what}", f"{path} is not writable on {host}", f"set "
                     f"{what.replace(' ', '_')} = a directory writable on the nodes, in "
                     f"{file(what.replace(' ', '_'))}")
        addr = f"{self.ctx.address}:{self.port}"
        connect = "" if got.get("via") != "file" else got.get("connect")
        if any(c.name == "scheduler port" for c in self.report.checks):
            pass  # already failed: nothing listened
        elif not self.ctx.address:
            add("scheduler port", Status.skip, "nothing to connect to (see interface)")
        elif connect == "":
            add("scheduler port", Status.ok, f"{host} connected to {addr}")
        elif connect is None:
            add("scheduler port", Status.skip, f"the probe's python did not run on {host}")
        else:
            fail("scheduler port", f"{host} cannot connect to {addr}: {connect}",
                 f"set interface = one the nodes reach, in {file('interface')}; or ask the "
                 "admins whether a firewall blocks the nodes from this machine")


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
    return _parse(data.decode("utf-8", "replace"), token)


def _parse(text: str, token: str) -> dict[str, Any] | None:
    try:
        got = json.loads(text.strip().splitlines()[0]) if text.strip() else None
    except ValueError:
        return None
    # Anyone on the network may connect to the port: only our probe knows the token.
    return got if isinstance(got, dict) and got.get("token") == token else None


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _wait_gone(job_ids: set[str], timeout: float = 15.0) -> None:
    """After scancel: wait until the jobs have left squeue (COMPLETING takes a moment)."""
    end = time.monotonic() + timeout
    while job_ids and slurm.queue(job_ids) and time.monotonic() < end:
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
token, host, port, iface, dirs = sys.argv[1:6]
r = {"token": token, "host": os.environ.get("SLURMD_NODENAME") or socket.gethostname(),
     "hostname": socket.gethostname(), "python": sys.executable, "dirs": {}}
try:
    import hpcscale
    r["hpcscale"] = hpcscale.__version__
except Exception as e:
    r["hpcscale_error"] = "%s: %s" % (type(e).__name__, e)
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
