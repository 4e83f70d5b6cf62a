"""Library functions behind ``hpcscale site``: check a profile against the live
SLURM, write a new one from what sinfo reports, share one with a lab."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tomli_w

from hpcscale import slurm, units
from hpcscale._fs import atomic_write
from hpcscale.config import profiles
from hpcscale.errors import ProfileError, UsageError


@dataclass(frozen=True)
class Finding:
    ok: bool
    message: str


def check(profile: profiles.SiteProfile) -> list[Finding]:
    """Compare a SLURM profile with the live cluster; submits nothing.

    Every finding is reported (not only the first): partition exists and is
    up, cores and memory fit on at least one of its nodes, walltime within
    the partition's MaxTime, max_jobs within its node count where it is
    limited, interface named.
    """
    if not isinstance(profile, profiles.SlurmProfile):
        return [Finding(True, f"{profile.name} is a local profile: nothing to check in SLURM")]
    s = profile.slurm
    findings: list[Finding] = []
    parts = slurm.partitions()
    all_nodes = slurm.nodes()
    for name in s.partition.split(","):
        part = parts.get(name)
        if part is None:
            findings.append(Finding(False, f"partition {name!r} does not exist "
                                    f"(partitions: {', '.join(sorted(parts)) or 'none'})"))
            continue
        findings.append(Finding(part.state == "UP", f"partition {name} exists, state {part.state}"))
        members = [all_nodes[n] for n in part.nodes if n in all_nodes]
        need = units.slurm_mem_bytes(s.memory)
        fitting = [n for n in members if n.cpus >= s.cores and n.memory >= need]
        if members and not fitting:
            biggest = max(members, key=lambda n: (n.memory, n.cpus))
            findings.append(Finding(False, (
                f"cores={s.cores}, memory={units.format_bytes(s.memory)} fit on no node of "
                f"{name} (largest: {biggest.name} with {biggest.cpus} cores, "
                f"{units.format_bytes(biggest.memory)})")))
        elif members:
            findings.append(Finding(True, (
                f"cores={s.cores}, memory={units.format_bytes(s.memory)} fit on "
                f"{len(fitting)} of {len(members)} node(s) of {name}")))
        if s.auto_walltime:
            limit = "unlimited" if part.max_time is None else units.format_walltime(part.max_time)
            findings.append(Finding(True, f"walltime auto: each run asks for its predicted "
                                    f"time plus a margin, within {name}'s MaxTime ({limit})"))
        elif part.max_time is not None and s.walltime_seconds > part.max_time:
            findings.append(Finding(False, (
                f"walltime {units.format_walltime(s.walltime_seconds)} is over {name}'s MaxTime "
                f"{units.format_walltime(part.max_time)}")))
        else:
            limit = "unlimited" if part.max_time is None else units.format_walltime(part.max_time)
            findings.append(Finding(True, f"walltime {units.format_walltime(s.walltime_seconds)} "
                                    f"within {name}'s MaxTime ({limit})"))
    if s.interface:
        findings.append(Finding(True, f"workers reach the scheduler on interface {s.interface}"))
    return findings


def init(name: str, partition: str, *, directory: Path | None = None,
         interface: str | None = None, force: bool = False) -> Path:
    """Write ``<name>.toml`` filled from what SLURM reports for ``partition``."""
    parts = slurm.partitions()
    if partition not in parts:
        raise UsageError(f"--partition {partition!r}: no such partition "
                         f"(partitions: {', '.join(sorted(parts)) or 'none'})")
    part = parts[partition]
    node_list = [n for n in slurm.nodes().values() if n.name in part.nodes]
    if not node_list:
        raise UsageError(f"--partition {partition!r}: has no nodes")
    smallest = min(node_list, key=lambda n: (n.cpus, n.memory))
    walltime = min(3600, part.max_time or 3600)
    target = (directory or profiles.user_dir()) / f"{name}.toml"
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to replace it")
    table: dict[str, object] = {
        "partition": partition,
        "walltime": units.format_walltime(walltime),
        "cores": smallest.cpus,
        "processes": 1,
        "memory": f"{smallest.memory // units.MIB}MiB",
        "max_jobs": max(1, min(len(node_list), 10)),
    }
    if interface:
        table["interface"] = interface
    data = {
        "name": name,
        "description": f"Written by hpcscale site init from partition {partition}.",
        "slurm": table,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(tomli_w.dumps(data), encoding="utf-8")
    os.chmod(target, 0o644)
    profiles.load(name, files={name: profiles.ProfileFile(name, target, "user")})
    return target


def share(name: str, directory: Path, *, force: bool = False) -> Path:
    """Copy profile ``name`` into a lab directory, group-readable and not world-writable."""
    found = profiles.discover()
    if name not in found:
        raise ProfileError(f"site {name!r} is not a known profile "
                           f"(known: {', '.join(sorted(found))})")
    profiles.load(name)  # never share a profile that does not validate
    entry = found[name]
    if not directory.is_dir():
        raise UsageError(f"DIR {directory}: not a directory")
    parent = profiles.load_file_table(entry.path).get("extends")
    if isinstance(parent, str) and found.get(parent) and found[parent].origin == "user" \
            and not (directory / f"{parent}.toml").exists():
        raise UsageError(
            f"site {name} extends {parent!r}, which only you have; share {parent} first"
        )
    target = directory / f"{name}.toml"
    if target.exists() and not force:
        raise UsageError(f"{target} exists; pass --force to replace it")
    atomic_write(target, entry.path.read_bytes(), mode=0o640)
    return target
