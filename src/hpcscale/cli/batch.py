"""Batch mode commands: sbatch (write/submit a run's batch script) and driver (inside it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hpcscale.cli.options import Jobs, Site, parse_jobs
from hpcscale.cli.render import OPTIONS, result, say
from hpcscale.errors import Interrupted
from hpcscale.run import batch

Spec = Annotated[Path, typer.Argument(help="Job spec (TOML), e.g. jobs/climate-mean.toml.")]
SummaryFile = Annotated[Path | None, typer.Option(
    "--summary-file", help="Write a short JSON summary (state, exit code, time, output) "
    "here when the run ends.")]


def sbatch(
    spec: Spec, site: Site = None, jobs: Jobs = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write the script to this file (default: print it).")] = None,
    submit: Annotated[bool, typer.Option(
        "--submit", help="Also submit it with sbatch and print the job id.")] = False,
    mail_type: Annotated[str | None, typer.Option(
        "--mail-type", help="SLURM mails on these events, e.g. END,FAIL.")] = None,
    mail_user: Annotated[str | None, typer.Option(
        "--mail-user", help="Address for --mail-type (default: SLURM's, your user).")] = None,
    summary_file: SummaryFile = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the script; create and submit nothing.")] = False,
) -> None:
    """Write a batch script that runs the whole job spec inside SLURM (nothing on the login node).

    The driver (scheduler + client) runs in the batch job and submits the
    workers as further jobs; follow it with `hpcscale status RUN`.
    Example: hpcscale sbatch jobs/climate-mean.toml --site mysite --jobs 4 --submit
    """
    written = batch.create(
        spec, site, parse_jobs(jobs), output=output, submit=submit and not dry_run,
        mail_type=batch.parse_mail_type(mail_type) if mail_type is not None else (),
        mail_user=mail_user, summary_file=summary_file, trust=OPTIONS.trust_profiles,
        dry_run=dry_run,
    )
    data = {"run_id": written.run_id, "run_dir": str(written.run_dir),
            "script": str(written.path) if written.path else None, "job_id": written.job_id}
    if written.job_id:
        result(f"submitted batch job {written.job_id}: run {written.run_id} "
               f"(follow it: hpcscale status {written.run_id})", data)
    elif output is not None and not dry_run:
        result(f"wrote {output} for run {written.run_id}; submit it with: sbatch {output}", data)
    else:
        if not dry_run:
            say(f"run {written.run_id}: run directory {written.run_dir}")
        result(written.script.rstrip("\n"), {**data, "text": written.script})


def driver(
    spec: Spec, run_id: Annotated[str, typer.Option(
        "--run-id", help="The batch run's id (its run directory is adopted).")],
    site: Site = None, jobs: Jobs = None, summary_file: SummaryFile = None,
) -> None:
    """Run a batch run's driver; only inside a SLURM job, as the script `hpcscale sbatch` writes.

    Example: hpcscale driver /home/me/jobs/mean.toml --site mysite --run-id 20260101-120000-ab12cd
    """
    try:
        summary = batch.drive(spec, site, parse_jobs(jobs), run_id, summary_file=summary_file,
                              trust=OPTIONS.trust_profiles, keep_logs=True)
    except KeyboardInterrupt as exc:
        raise Interrupted(f"interrupted ({exc or 'signal'}); the run's worker jobs were "
                          "cancelled") from exc
    result(f"done in {summary.seconds:.1f} s: {summary.output} ({summary.workers} workers, "
           f"{len(summary.jobs)} worker job(s); run {summary.run_id})", summary.__dict__)


def register(app: typer.Typer) -> None:
    app.command()(sbatch)
    app.command()(driver)
