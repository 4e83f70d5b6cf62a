"""``hpcscale site``: list, show, check, init and share site profiles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpcscale import sites as sitelib
from hpcscale import units
from hpcscale.cli.render import OPTIONS, result
from hpcscale.config import profiles
from hpcscale.errors import ProfileError

app = typer.Typer(help="Site profiles: list, show, check against SLURM, create, share.",
                  no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="Profile name, e.g. testbed.")]


@app.command("list")
def list_() -> None:
    """Every profile on the search path, the file it comes from and the files it shadows.

    Example: hpcscale site list
    """
    found = profiles.discover()
    rows = []
    lines = []
    for name in sorted(found):
        f = found[name]
        rows.append({"name": name, "origin": f.origin, "file": str(f.path),
                     "shadows": [str(p) for p in f.shadows]})
        shadow = f"  (shadows {', '.join(map(str, f.shadows))})" if f.shadows else ""
        lines.append(f"{name:<20} {f.origin:<10} {f.path}{shadow}")
    result("\n".join(lines) or "no profiles found", rows)


def _value(value: object) -> str:
    return str(value)


@app.command()
def show(name: Name) -> None:
    """The resolved profile (after extends), with the file each value came from.

    Prologue lines are shown in full: they run in every job.
    Example: hpcscale site show testbed
    """
    res = profiles.load(name, trust=OPTIONS.trust_profiles)
    p = res.profile
    data = p.model_dump(mode="json")
    lines = [f"name         {p.name}", f"kind         {p.kind}",
             f"description  {p.description}", f"files        {' <- '.join(map(str, res.files))}"]
    table = p.slurm if isinstance(p, profiles.SlurmProfile) else p.local
    prefix = p.kind
    for key, value in table.model_dump().items():
        src = res.sources.get(f"{prefix}.{key}")
        shown = value
        if key == "memory" and value:
            shown = f"{units.format_bytes(value)} ({value} bytes)"
        elif key == "walltime":  # seconds, or "auto"
            shown = value if isinstance(value, str) else units.format_walltime(value)
        elif key == "prologue":
            continue
        origin = f"   [{src}]" if src else "   [default]"
        lines.append(f"{prefix}.{key:<17} {shown}{origin}")
    if isinstance(p, profiles.SlurmProfile):
        src = res.sources.get("slurm.prologue")
        lines.append(f"slurm.prologue (runs in every job){f'   [{src}]' if src else ''}:")
        lines += [f"    {line}" for line in p.slurm.prologue] or ["    (none)"]
    data["files"] = [str(f) for f in res.files]
    data["sources"] = {k: str(v) for k, v in res.sources.items()}
    result("\n".join(lines), data)


@app.command()
def check(name: Name) -> None:
    """Ask the live SLURM whether the profile fits: partition, node sizes, MaxTime.

    Submits nothing; reports every finding; exits 2 if any check fails.
    Example: hpcscale site check testbed
    """
    res = profiles.load(name, trust=OPTIONS.trust_profiles)
    findings = sitelib.check(res.profile)
    lines = [("ok    " if f.ok else "FAIL  ") + f.message for f in findings]
    result("\n".join(lines), [{"ok": f.ok, "message": f.message} for f in findings])
    bad = [f for f in findings if not f.ok]
    if bad:
        raise ProfileError(f"site {name}: {len(bad)} check(s) failed: "
                           + "; ".join(f.message for f in bad))


@app.command()
def init(
    name: Name,
    partition: Annotated[str, typer.Option(help="Partition to size the profile from.")],
    interface: Annotated[str | None, typer.Option(help="Network interface of the nodes.")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="Where to write it "
                                                   "(default: your config directory).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Write a new profile filled from what sinfo reports for a partition.

    Example: hpcscale site init mysite --partition debug
    """
    path = sitelib.init(name, partition, directory=directory, interface=interface, force=force)
    result(f"wrote {path}", {"path": str(path)})


@app.command()
def share(
    name: Name,
    directory: Annotated[Path, typer.Argument(help="The lab's shared profile directory.")],
    force: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """Copy a profile into a lab directory, group-readable and not world-writable (0640).

    Lab members add the directory to HPCSCALE_SITE_PATH.
    Example: hpcscale site share mylab /project/mylab/hpcscale-sites
    """
    path = sitelib.share(name, directory, force=force)
    result(f"shared {name} as {path} (mode 0640)", {"path": str(path)})
