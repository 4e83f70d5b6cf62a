"""``hpcscale doctor``: check what a newcomer's set-up usually gets wrong, and say what to fix.

Every check is reported, in order (``ok``, ``FAIL`` with a fix, or ``skip``
with the reason): SLURM's commands and controller, the profile, its
partition, size and account, the scheduler's interface on this machine, the
directories a run writes, and a tiny probe job (:mod:`hpcscale.doctor.probe`).
The probe runs the profile's prologue and the workers' python on a compute
node and reports back over TCP to a port the doctor listens on at the
scheduler's address: the path a dask worker takes. What it reports becomes
the ``node ...`` and ``scheduler port`` checks here.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hpcscale import sites as sitelib
from hpcscale import slurm
from hpcscale._meta import __version__
from hpcscale.config import functions as user_functions
from hpcscale.config import profiles
from hpcscale.doctor.probe import Ending, Outcome, Probe
from hpcscale.errors import JobSpecError, ProfileError, SubmissionError
from hpcscale.rundir import runs_dir

SLURM_COMMANDS = ("sbatch", "squeue", "scontrol", "scancel")
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
    site: str, *, trust: bool = False, probe: bool = True, start_timeout: float = 60.0,
    run_timeout: float = 60.0, on_status: Callable[[str], None] | None = None,
    functions: tuple[str, ...] = (),
) -> Report:
    """Check everything a run on ``site`` needs; submit the probe job unless ``probe`` is False.

    ``site`` is a name already chosen (the command asks ``run.choose_site``).
    Raises only for a usage error (exit 2): a site that is not a known profile.
    Every other problem is a FAIL in the report. ``on_status`` hears about the
    probe job while it is waited for. ``functions`` (``module:function`` or
    ``file.py:function``, as ``--fn`` takes them): the probe imports each one's module
    on the compute node, with the workers' python (a file travels with the tasks).
    """
    name = site
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
    modules = _function_checks(report, functions)
    if isinstance(res.profile, profiles.LocalProfile):
        local = res.profile.local.local_directory
        path = Path(os.path.expandvars(local)).expanduser() if local else Path(
            tempfile.gettempdir())
        _dir_check(report, "local directory", path, "set [local] local_directory = a "
                   f"directory you can write, in {res.files[0]}")
        report.add("slurm", Status.skip, f"site {name} runs on this machine: SLURM checks skipped")
        return report
    _Slurm(report, res, res.profile.slurm, on_status or (lambda _text: None),
           modules).run(probe, start_timeout, run_timeout)
    return report


def _function_checks(report: Report, specs: tuple[str, ...]) -> tuple[str, ...]:
    """A check per ``--fn``: it loads here (a file, or a module importable here); the
    modules the probe is to import on a compute node."""
    modules: list[str] = []
    for spec in specs:
        try:
            fn = user_functions.load(spec, where="--fn")
        except JobSpecError as err:
            report.add("function", Status.fail, str(err),
                       "install the module here (and for the workers' python), or correct "
                       "the --fn value")
            continue
        if fn.module:
            modules.append(fn.module)
            report.add("function", Status.ok, f"{spec}: imports here ({sys.executable}); the "
                       "probe job imports it on a compute node")
        else:
            report.add("function", Status.ok, f"{spec}: {fn.path} loads here; its code "
                       "travels with the tasks (nothing to install on the nodes)")
    return tuple(modules)


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
                 s: profiles.SlurmSettings, say: Callable[[str], None],
                 modules: tuple[str, ...] = ()) -> None:
        self.report, self.res, self.s, self.say = report, res, s, say
        self.modules = modules
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
            self.probe(start_timeout, run_timeout)

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
        s, user = self.s, slurm.user()
        if not (s.account or s.qos):
            self.report.add("account/qos", Status.skip, "neither set: SLURM uses your defaults")
            return
        if shutil.which("sacctmgr") is None:
            self.report.add("account/qos", Status.skip, "sacctmgr not found; the probe job "
                            "shows whether SLURM accepts them")
            return
        try:
            rows = slurm.associations()
        except slurm.SlurmCommandError as err:
            said = (err.stderr or str(err)).strip().splitlines() or ["sacctmgr failed"]
            self.report.add("account/qos", Status.skip, f"no accounting to ask ({said[0]}); "
                            "the probe job shows whether SLURM accepts them")
            return
        assoc = [(r["Account"], r["QOS"]) for r in rows]
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

    def probe(self, start_timeout: float, run_timeout: float) -> None:
        """Submit the probe job; what became of it, and what it reported, as checks."""
        failed = len(self.report.failed)
        names = self.s.partition.split(",")
        max_time = min((t for n in names if (t := self.parts[n].max_time)), default=None)
        probe = Probe(self.s, address=self.address, max_time=max_time, say=self.say,
                      start_timeout=start_timeout, run_timeout=run_timeout,
                      modules=self.modules)
        out = probe.run()
        if out.listen_error:
            self.fail("scheduler port", f"cannot listen on {self.address}: {out.listen_error}",
                      f"set interface = another one in {self.file('interface')}")
        self.ended(out, start_timeout, run_timeout)
        if out.report is not None:
            self.judge(out)
        if len(self.report.failed) == failed:
            probe.discard()
        else:
            self.say(f"the probe's script and output are kept in {out.directory}")

    def ended(self, out: Outcome, start_timeout: float, run_timeout: float) -> None:
        """The ``probe job`` check: how the job ended."""
        job, profile = out.job_id, self.res.files[0]
        if out.ending is Ending.reported and out.report is not None:
            self.report.add("probe job", Status.ok, f"job {job} ran on "
                            f"{out.report.get('host', '?')} (started within {out.waited:.0f} s)")
        elif out.ending is Ending.refused:
            self.fail("probe job", f"sbatch refused it: {out.detail}",
                      "the profile asks for what SLURM does not allow here (partition, "
                      f"account, qos, extra_directives); correct {profile}")
        elif out.ending is Ending.pending:
            self.fail("probe job", f"job {job} still PENDING after {start_timeout:.0f} s "
                      f"(reason: {out.detail}); cancelled",
                      "the partition is busy: run again later, or with a longer --timeout"
                      if out.detail in _BUSY else f"SLURM holds it for {out.detail} "
                      f"(`scontrol show job` says more); correct {profile}")
        elif out.ending is Ending.silent:
            self.fail("probe job", f"job {job} ran on {out.detail} for {run_timeout:.0f} s "
                      "without a report; cancelled", "does a prologue line wait for something? "
                      f"{out.directory}/probe.out and probe.err say how far it got")
        else:
            self.fail("probe job", f"job {job} ended without a report"
                      f"{f' ({out.stderr})' if out.stderr else ''}",
                      f"read {out.directory}/probe.err; is {runs_dir()} on a filesystem "
                      "the compute nodes share?")

    def judge(self, out: Outcome) -> None:
        """The ``node ...`` and ``scheduler port`` checks, from the probe's report."""
        got = out.report or {}
        self.report.probe = got
        add, fail, s, file = self.report.add, self.fail, self.s, self.file
        host = got.get("host", "?")
        if "python_rc" in got:
            fail("node python", f"{s.python or sys.executable} did not run on {host} (exit "
                 f"{got['python_rc']}{f': {out.stderr}' if out.stderr else ''})",
                 f"set python = the workers' python on the nodes in {file('python')}, or load "
                 "it in prologue")
        elif got.get("hpcscale") == __version__:
            add("node python", Status.ok, f"{got['python']} on {host} imports hpcscale "
                f"{__version__}, as here")
        else:
            said = (f"has hpcscale {got['hpcscale']}, here {__version__}" if "hpcscale" in got
                    else f"cannot import hpcscale ({got.get('hpcscale_error')})")
            fail("node python", f"{got.get('python')} on {host} {said}",
                 f"install hpcscale {__version__} for it, or set python = the right one in "
                 f"{file('python')} (or activate it in prologue)")
        for module, why in (got.get("modules") or {}).items():
            if why:
                fail("node function", f"module {module!r} does not import with "
                     f"{got.get('python')} on {host}: {why}",
                     f"install it for the workers' python, or load it in prologue "
                     f"({file('prologue')})")
            else:
                add("node function", Status.ok, f"module {module!r} imports with "
                    f"{got.get('python')} on {host}")
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
        connect = "" if got.get("via") != "file" else got.get("connect")
        if out.listen_error:
            pass  # already failed: nothing listened
        elif not self.address:
            add("scheduler port", Status.skip, "nothing to connect to (see interface)")
        elif connect == "":
            add("scheduler port", Status.ok, f"{host} connected to {out.listened}")
        elif connect is None:
            add("scheduler port", Status.skip, f"the probe's python did not run on {host}")
        else:
            fail("scheduler port", f"{host} cannot connect to {out.listened}: {connect}",
                 f"set interface = one the nodes reach, in {file('interface')}; or ask the "
                 "admins whether a firewall blocks the nodes from this machine")
