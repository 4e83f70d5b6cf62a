"""``hpcscale doctor``: check the set-up a run needs and say what to fix."""

from __future__ import annotations

from typing import Annotated

import typer

from hpcscale import doctor as doctorlib
from hpcscale import run as runlib
from hpcscale.cli.options import Site
from hpcscale.cli.render import OPTIONS, result, say
from hpcscale.errors import HpcscaleError


def doctor(
    site: Site = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Run only the checks that submit nothing (no probe job).")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=1, help="Seconds the probe job may wait in the queue to start.")] = 60.0,
    fn: Annotated[list[str] | None, typer.Option(
        "--fn", help="A function your runs use (module:function or file.py:function): "
        "check it loads here and its module imports on a compute node; repeat.")] = None,
) -> None:
    """Check SLURM, the profile, interfaces and directories, and run a tiny probe job.

    One line per check (ok, FAIL with a fix, skip); exits 1 if any check fails.
    The probe job (1 core, 256M, a minute or two) runs the profile's prologue
    and the workers' python on a compute node and connects back to this
    machine; it is always cancelled. With --site local only the checks that
    apply run.
    Example: hpcscale doctor --site testbed --fn skimage.filters:sobel
    """
    report = doctorlib.diagnose(runlib.choose_site(site), trust=OPTIONS.trust_profiles,
                                probe=not dry_run, start_timeout=timeout, on_status=say,
                                functions=tuple(fn or ()))
    failed = report.failed
    lines = report.lines()
    if not failed:
        skipped = sum(c.status is doctorlib.Status.skip for c in report.checks)
        lines.append(f"site {report.site}: every check passed"
                     f"{f' ({skipped} skipped)' if skipped else ''}")
    result("\n".join(lines), report.as_json())
    if failed:
        names = ", ".join(dict.fromkeys(c.name for c in failed))
        raise HpcscaleError(f"site {report.site}: {len(failed)} check(s) failed ({names}); "
                            "see the fix: lines")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
