"""What the live SLURM allows: partitions, nodes, and the user's association limits."""

from __future__ import annotations

from dataclasses import dataclass

from hpcscale import units
from hpcscale.errors import SubmissionError
from hpcscale.slurm.commands import run, user
from hpcscale.slurm.parse import ASSOC_FIELDS, parse_associations, parse_oneliner


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
    for rec in parse_oneliner(out):
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
    for rec in parse_oneliner(out):
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
