"""Everything that talks to SLURM's commands.

Queries are batched (one ``squeue`` for all of a run's jobs, never one per
job), and failures raise :class:`SlurmCommandError` carrying the command, its
exit code and its output, so the user sees SLURM's own words.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hpcscale import units
from hpcscale.errors import SubmissionError

TIMEOUT = 30.0


class SlurmCommandError(SubmissionError):
    """A SLURM command failed; ``str()`` is one line with SLURM's own message."""

    def __init__(self, cmd: Sequence[str], code: int, stdout: str, stderr: str) -> None:
        self.cmd = list(cmd)
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        said = (stderr.strip() or stdout.strip()).replace("\n", " | ")
        super().__init__(f"`{' '.join(self.cmd)}` failed (exit {code}): {said or 'no output'}")


def available() -> bool:
    """Whether SLURM's client commands are on PATH."""
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def run(cmd: Sequence[str], *, timeout: float = TIMEOUT, check: bool = True) -> str:
    """Run one SLURM command and return its stdout."""
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as err:
        raise SlurmCommandError(cmd, 127, "", f"{cmd[0]}: command not found") from err
    except subprocess.TimeoutExpired as err:
        raise SlurmCommandError(cmd, 124, "", f"no answer within {timeout:.0f} s") from err
    if check and proc.returncode != 0:
        raise SlurmCommandError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def _oneliner(text: str) -> list[dict[str, str]]:
    """Parse ``scontrol show ... --oneliner`` output: one dict per record."""
    records = []
    for line in text.splitlines():
        record: dict[str, str] = {}
        for token in line.split():
            if "=" in token:
                key, value = token.split("=", 1)
                record[key] = value
        if record:
            records.append(record)
    return records


@dataclass(frozen=True)
class Partition:
    name: str
    state: str
    max_time: int | None  # seconds, None = unlimited
    max_nodes: int | None
    nodes: tuple[str, ...]
    default: bool


@dataclass(frozen=True)
class Node:
    name: str
    cpus: int
    memory: int  # bytes (RealMemory)
    state: str
    partitions: tuple[str, ...]


def partitions() -> dict[str, Partition]:
    """Every partition, from one ``scontrol show partition``."""
    out = run(["scontrol", "show", "partition", "--oneliner"])
    result = {}
    for rec in _oneliner(out):
        name = rec.get("PartitionName", "")
        max_nodes = rec.get("MaxNodes", "UNLIMITED")
        result[name] = Partition(
            name=name,
            state=rec.get("State", "UNKNOWN"),
            max_time=units.parse_slurm_time(rec.get("MaxTime", "UNLIMITED")),
            max_nodes=None if max_nodes.upper() == "UNLIMITED" else int(max_nodes),
            nodes=tuple(expand_hostlist(rec.get("Nodes", ""))),
            default=rec.get("Default", "NO") == "YES",
        )
    return result


def nodes() -> dict[str, Node]:
    """Every node, from one ``scontrol show node``."""
    out = run(["scontrol", "show", "node", "--oneliner"])
    result = {}
    for rec in _oneliner(out):
        name = rec.get("NodeName", "")
        result[name] = Node(
            name=name,
            cpus=int(rec.get("CPUTot", "0")),
            memory=int(rec.get("RealMemory", "0")) * units.MIB,
            state=rec.get("State", "UNKNOWN"),
            partitions=tuple(p for p in rec.get("Partitions", "").split(",") if p),
        )
    return result


def expand_hostlist(hostlist: str) -> list[str]:
    """``c[1-3],gpu01`` -> ``[c1, c2, c3, gpu01]``, as ``scontrol show hostnames`` does."""
    if not hostlist or hostlist == "(null)":
        return []
    return run(["scontrol", "show", "hostnames", hostlist]).split()


@dataclass(frozen=True)
class JobState:
    job_id: str
    name: str
    state: str  # PENDING, RUNNING, COMPLETING, ...
    reason: str  # SLURM's reason, e.g. Resources, PartitionTimeLimit
    nodes: str
    partition: str


class SlurmUnavailable(SlurmCommandError):
    """SLURM did not answer a query (controller down, ``Socket timed out``...).

    It says nothing about the jobs: callers treat their states as unknown,
    never as gone.
    """


# squeue's words when every job it was asked about has left the queue: an answer.
_GONE = "Invalid job id specified"


def queue(job_ids: Iterable[str] = (), *, name: str | None = None) -> dict[str, JobState]:
    """States of the given jobs (or the user's jobs called ``name``) in one ``squeue`` call.

    Finished jobs are simply absent. Raises :class:`SlurmUnavailable` when squeue
    fails for any other reason (the controller did not answer): no answer is
    not "every job is gone".
    """
    ids = [j for j in job_ids if j]
    cmd = ["squeue", "--noheader", "--format=%i|%j|%T|%r|%N|%P"]
    if ids:
        cmd.append("--jobs=" + ",".join(ids))
    elif name is not None:
        cmd += ["--name=" + name, "--user=" + user()]
    else:
        return {}
    try:
        out = run(cmd)
    except SlurmCommandError as err:
        # squeue exits 1 when every listed job is gone: that is an answer
        if ids and err.code == 1 and _GONE in err.stderr and not err.stdout.strip():
            return {}
        raise SlurmUnavailable(err.cmd, err.code, err.stdout, err.stderr) from err
    states = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) != 6:
            continue
        states[parts[0]] = JobState(*parts)
    return states


def job_node(job_id: str) -> str | None:
    """The node a job ran on, from SLURM's record of it (kept a while after it ended)."""
    try:
        out = run(["scontrol", "show", "job", job_id, "--oneliner"], timeout=10)
    except SlurmCommandError:
        return None
    for rec in _oneliner(out):
        for key in ("BatchHost", "NodeList"):
            if rec.get(key) not in (None, "", "(null)"):
                return rec[key]
    return None


def cancel(job_ids: Iterable[str]) -> None:
    """Cancel jobs with one ``scancel``; jobs already gone are not an error."""
    ids = [j for j in job_ids if j]
    if ids:
        run(["scancel", *ids], check=False)


def user() -> str:
    """The user whose jobs and associations hpcscale asks about."""
    import getpass

    return os.environ.get("USER") or getpass.getuser()


@dataclass(frozen=True)
class Limits:
    """What the live SLURM allows a run on one partition (None: no limit known)."""

    partition: str
    max_time: int | None
    nodes: int
    node_cpus: int  # largest node of the partition
    node_memory: int  # bytes, largest node of the partition
    max_jobs: int | None = None  # the user's association: MaxJobs
    max_submit: int | None = None  # MaxSubmitJobs
    max_wall: int | None = None  # MaxWall (seconds)
    # (CPUs, memory in bytes) of each node of the partition; () when not known
    node_sizes: tuple[tuple[int, int], ...] = ()

    def jobs_fit(self, cores: int, memory: int) -> tuple[int, list[int]]:
        """How many jobs of ``cores`` CPUs and ``memory`` bytes (``--mem``, per node) run at
        once on the partition's nodes, and how many on each node, by CPUs and by memory."""
        sizes = self.node_sizes or ((self.node_cpus, self.node_memory),) * self.nodes
        per_node = [min(cpus // max(cores, 1), mem // max(memory, 1)) for cpus, mem in sizes]
        return sum(per_node), per_node


def limits(partition: str) -> Limits | None:
    """The partition's limits and the user's association limits, or None if unknown.

    Accounting is optional: a site without slurmdbd gives no association limits,
    quietly.
    """
    part = partitions().get(partition.split(",", maxsplit=1)[0])
    if part is None:
        return None
    members = [n for n in nodes().values() if n.name in part.nodes]
    assoc = association()
    return Limits(
        partition=part.name,
        max_time=part.max_time,
        nodes=len(members),
        node_cpus=max((n.cpus for n in members), default=0),
        node_memory=max((n.memory for n in members), default=0),
        node_sizes=tuple((n.cpus, n.memory) for n in members),
        max_jobs=assoc.get("MaxJobs"),
        max_submit=assoc.get("MaxSubmitJobs"),
        max_wall=assoc.get("MaxWall"),
    )


ASSOC_FIELDS = ("Account", "QOS", "MaxJobs", "MaxSubmitJobs", "MaxWall")


def parse_associations(text: str) -> list[dict[str, str]]:
    """``sacctmgr --parsable2 --noheader ... format=<ASSOC_FIELDS>`` output: one dict a line."""
    rows = []
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) == len(ASSOC_FIELDS):
            rows.append(dict(zip(ASSOC_FIELDS, (f.strip() for f in fields), strict=True)))
    return rows


def associations(timeout: float = 10) -> list[dict[str, str]]:
    """The user's associations (account, QOS, limits) from one ``sacctmgr`` call.

    Raises :class:`SlurmCommandError` where there is no accounting (or no sacctmgr).
    """
    out = run(["sacctmgr", "--noheader", "--parsable2", "show", "assoc", "where",
               f"user={user()}", "format=" + ",".join(ASSOC_FIELDS)], timeout=timeout)
    return parse_associations(out)


def association() -> dict[str, int]:
    """The user's MaxJobs, MaxSubmitJobs and MaxWall (the tightest of their associations);
    {} without accounting."""
    try:
        rows = associations()
    except SubmissionError:
        return {}  # no accounting storage (or no sacctmgr): nothing to clamp to
    found: dict[str, int] = {}
    for row in rows:
        for key in ("MaxJobs", "MaxSubmitJobs"):
            if row[key].isdigit():
                found[key] = min(found.get(key, 1 << 30), int(row[key]))
        wall = units.parse_slurm_time(row["MaxWall"]) if row["MaxWall"] else None
        if wall:
            found["MaxWall"] = min(found.get("MaxWall", 1 << 30), wall)
    return found
