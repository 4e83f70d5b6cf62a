"""Batch mode: hand a whole run to SLURM, so nothing of it lives on the login node.

``hpcscale sbatch`` writes a batch script for a job spec: an ``#SBATCH`` header
from the profile, the profile's prologue, and one command,
``python -m hpcscale driver SPEC --run-id ID``, which runs the usual driver
(scheduler + client, :func:`hpcscale.run.execute`) inside the allocation. The
driver submits the workers as further jobs of the same profile; all of a run's
jobs, the batch job included, are named ``hpcscale-<run id>``, so ``hpcscale
cancel`` finds every one.

The run directory is made when the script is written (its ``logs/`` must exist
before SLURM opens the log files); the driver adopts it by its id. States:
``written`` (script only) -> ``pending`` (batch job queued) -> ``starting`` ->
``pending`` (workers queued) -> ``running`` -> ``done``/``failed``/``cancelled``.

Inside the allocation the scheduler runs on a compute node, so it listens on
the compute nodes' interface (``worker_interface``), not the login node's
(:func:`in_allocation`). Workers inside the batch job's own allocation (srun)
are not implemented; the script's comments give the trade-off.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hpcscale import run, units
from hpcscale._fs import write_json
from hpcscale.config import jobspec
from hpcscale.config.profiles import SiteProfile, SlurmProfile
from hpcscale.errors import (
    HpcscaleError,
    ProfileError,
    SubmissionError,
    UsageError,
)
from hpcscale.io.output import check_not_input
from hpcscale.run import filemap
from hpcscale.rundir import RUN_ID_RE, RunDir, RunState, new_run_id, runs_dir
from hpcscale.slurm import submit_script
from hpcscale.slurm.directives import sbatch_directives, sbatch_path

# sbatch --mail-type values (Slurm 22.05 and later).
MAIL_TYPES = frozenset({
    "NONE", "BEGIN", "END", "FAIL", "REQUEUE", "ALL", "INVALID_DEPEND", "STAGE_OUT",
    "TIME_LIMIT", "TIME_LIMIT_90", "TIME_LIMIT_80", "TIME_LIMIT_50", "ARRAY_TASKS",
})
_MAIL_USER = re.compile(r"^[A-Za-z0-9._%+\-]+(@[A-Za-z0-9.\-]+)?$")


def parse_mail_type(text: str) -> tuple[str, ...]:
    """``"END,FAIL"`` -> ``("END", "FAIL")``; anything but known SLURM mail types is refused."""
    values = tuple(v.strip().upper() for v in text.split(","))
    bad = [v for v in values if v not in MAIL_TYPES]
    if bad or "\n" in text or "\r" in text:
        shown = ", ".join(repr(v) for v in bad) or repr(text)
        raise UsageError(f"--mail-type {shown}: not a SLURM mail type; use a comma list of "
                         f"{', '.join(sorted(MAIL_TYPES))}")
    return values


def check_mail_user(text: str) -> str:
    if not _MAIL_USER.match(text):
        raise UsageError(f"--mail-user {text!r}: expected one address such as "
                         "name@example.org (no spaces, quotes or newlines)")
    return text


@dataclass(frozen=True)
class BatchScript:
    """Everything the batch script says; :func:`render` turns it into text."""

    profile: SlurmProfile
    spec_path: Path  # absolute
    run_id: str
    runs: Path  # the runs directory (HPCSCALE_RUNS_DIR), absolute
    workdir: Path  # where relative paths of the spec resolve
    jobs: int | str | None = None
    mail_type: tuple[str, ...] = ()
    mail_user: str | None = None
    summary_file: Path | None = None
    trust_profiles: bool = False
    python: str = field(default_factory=lambda: sys.executable)

    @property
    def rundir(self) -> RunDir:
        return RunDir(self.run_id, self.runs / self.run_id)


def script_for(profile: SiteProfile, spec_path: Path, run_id: str, **kw: Any) -> BatchScript:
    """A :class:`BatchScript` with the profile's python and the current runs directory."""
    if not isinstance(profile, SlurmProfile):
        raise ProfileError(f"site {profile.name} is a local profile: a batch run needs a "
                           "SLURM profile")
    for path in (spec_path, kw.get("summary_file")):
        if path is not None and any(c in str(path) for c in "\n\r"):
            raise UsageError(f"{str(path)!r}: a path with a newline cannot go into a script")
    kw.setdefault("runs", runs_dir().absolute())
    kw.setdefault("workdir", Path.cwd())
    return BatchScript(profile, spec_path.absolute(), run_id,
                       python=profile.slurm.python or sys.executable, **kw)


def render(b: BatchScript) -> str:
    """The batch script: readable, editable, and valid for a plain ``sbatch``."""
    s = b.profile.slurm
    logs = sbatch_path(b.rundir.logs, "run directory")
    out, err = (f"{logs}/{p.name}" for p in b.rundir.driver_output)
    head = sbatch_directives(s, job_name=b.rundir.job_name, walltime=s.walltime_seconds,
                             cpus=s.cores, memory=units.slurm_mem(s.memory), files=[
        f"--chdir={sbatch_path(b.workdir, 'working directory')}",
        f"--output={out}",
        f"--error={err}",
        *([f"--mail-type={','.join(b.mail_type)}"] if b.mail_type else []),
        *([f"--mail-user={b.mail_user}"] if b.mail_user else []),
    ])
    listen = s.worker_interface or s.interface
    where = (f"the compute nodes' interface ({listen})" if listen
             else "this node's default address")
    cmd = [b.python, "-m", "hpcscale"]
    if b.trust_profiles:
        cmd.append("--trust-profiles")
    cmd += ["driver", str(b.spec_path), "--site", b.profile.name, "--run-id", b.run_id]
    if b.jobs is not None:
        cmd += ["--jobs", str(b.jobs)]
    if b.summary_file is not None:
        cmd += ["--summary-file", str(b.summary_file)]
    lines = ["#!/usr/bin/env bash", *(f"#SBATCH {h}" for h in head), "#"]
    lines += [f"# {ln}".rstrip() for ln in _ABOUT.format(
        run_id=b.run_id, site=b.profile.name, spec=b.spec_path).splitlines()]
    lines += ["",
              "# A failing set-up line stops the job here. Not -u: module and",
              "# virtualenv scripts read unset variables.",
              "set -e", ""]
    if s.prologue:
        lines += ["# Environment, from the profile's prologue.",
                  "# shellcheck disable=SC1090,SC1091  # site set-up files cannot be followed",
                  "{", *(f"    {p}" for p in s.prologue), "}", ""]
    lines += [
        "# The run directory (state, logs, TLS credentials) is found here.",
        f"export HPCSCALE_RUNS_DIR={shlex.quote(str(b.runs))}",
        "",
        "# The driver: dask scheduler and client on this node. `hpcscale driver` runs",
        "# only inside an allocation; its scheduler listens on",
        f"# {where}, where the worker jobs reach it.",
        "exec " + shlex.join(cmd),
    ]
    return "\n".join(lines) + "\n"


_ABOUT = """\
hpcscale batch run {run_id} on site {site}, written by `hpcscale sbatch`.
Job spec: {spec} (read when this job starts)

The driver (dask scheduler + client) runs inside this job on a compute node:
logging out, or a login node that ends long processes, stops nothing. It
submits the workers as further jobs of the same profile, all named like this
job, writes the Zarr output, and cancels its workers when it ends.

Follow and control the run from the login node:
  hpcscale status {run_id}   state, SLURM jobs, progress, dashboard ssh line
  hpcscale logs {run_id}     this job's log and the workers' logs
  hpcscale cancel {run_id}   cancel this job and every worker job

Edit freely; `sbatch` this file by hand to run it (again).
Trade-offs of this design:
* This job asks for what one worker job gets (cores, memory, walltime); the
  driver needs far less, lower it here if your site charges for it.
* Workers queue as separate jobs once this one runs, so a run waits in the
  queue twice, and this job's walltime bounds the whole run (its workers stop
  within a minute of the scheduler going away).
* Not done: workers inside this same allocation via srun. That waits in the
  queue once and submits nothing from a compute node, but holds every node
  for the whole run, idle while it starts and winds down.
* --chdir: relative paths in the job spec resolve from where the script was
  written."""


@dataclass
class Written:
    """What :func:`create` made: the script, its run, and the batch job if submitted."""

    run_id: str
    run_dir: Path
    script: str
    path: Path | None = None  # where the script was written (None: dry run)
    job_id: str | None = None


def create(
    spec_path: Path, site: str | None, jobs: int | str | None, *,
    output: Path | None = None, submit: bool = False, mail_type: tuple[str, ...] = (),
    mail_user: str | None = None, summary_file: Path | None = None, trust: bool = False,
    dry_run: bool = False,
) -> Written:
    """Validate the run (as ``submit`` would), write its batch script and, with ``submit``,
    sbatch it.

    The run directory is created (state ``written``; ``pending`` once submitted)
    with a copy of the script as ``batch.sbatch``; ``output`` is an extra copy,
    refused if it exists. ``dry_run`` renders the script and touches nothing.
    """
    if mail_user is not None and not mail_type:
        raise UsageError("--mail-user needs --mail-type (e.g. --mail-type END,FAIL)")
    if mail_user is not None:
        check_mail_user(mail_user)
    if output is not None and output.exists():
        raise UsageError(f"-o {output}: exists; remove it or choose another file")
    if output is not None and not output.absolute().parent.is_dir():
        raise UsageError(f"-o {output}: its directory does not exist")
    spec = jobspec.load_any(spec_path)
    inputs = [spec.map.files if isinstance(spec, jobspec.MapSpec) else spec.input.path]
    if output is not None:
        check_not_input(output, inputs, UsageError, "-o")
    if summary_file is not None:
        check_not_input(summary_file, inputs, UsageError, "--summary-file")
    prep = _prepare(spec, site, jobs, trust)
    run_id = new_run_id()
    b = script_for(prep.profile, spec_path, run_id, jobs=jobs, mail_type=mail_type,
                   mail_user=mail_user, trust_profiles=trust,
                   summary_file=summary_file.absolute() if summary_file else None)
    text = render(b)
    if dry_run:
        return Written(run_id, b.rundir.path, text)
    rd = RunDir.create(prep.spec, prep.profile, prep.plan, trusted=trust,
                       profile_files=prep.profile_files, run_id=run_id)
    rd.logs.mkdir(exist_ok=True)
    copy = rd.batch_script
    copy.write_text(text, encoding="utf-8")
    path = copy
    if output is not None:
        output.write_text(text, encoding="utf-8")
        path = output.absolute()
    rd.update(state=RunState.WRITTEN, batch=True, script=str(path))
    written = Written(run_id, rd.path, text, path)
    if submit:
        try:
            written.job_id = submit_script(path)
        except SubmissionError as err:
            rd.update(state=RunState.FAILED, error=str(err))
            raise
        rd.update(state=RunState.PENDING, batch_job=written.job_id, submitted=time.time())
    return written


def _prepare(spec: jobspec.JobSpec | jobspec.MapSpec, site: str | None,
             jobs: int | str | None, trust: bool) -> run.Prepared | filemap.MapPrepared:
    """Either kind of run, prepared (everything checked, nothing written)."""
    if isinstance(spec, jobspec.MapSpec):
        return filemap.prepare(spec, site, jobs, trust=trust)
    return run.prepare(spec, site, jobs, trust=trust)


def in_allocation(profile: SiteProfile) -> SiteProfile:
    """The profile as a driver inside a batch job uses it: the scheduler runs on a
    compute node, so it listens on ``worker_interface`` (where the workers are),
    not the login node's ``interface``."""
    if not isinstance(profile, SlurmProfile) or not profile.slurm.worker_interface:
        return profile
    s = profile.slurm
    return profile.model_copy(update={"slurm": s.model_copy(
        update={"interface": s.worker_interface})})


class LogReporter:
    """The driver's reporter: timestamped lines on stdout (the batch job's log),
    progress into ``state.json`` for ``hpcscale status``."""

    def __init__(self, rundir: RunDir, stream: TextIO | None = None,
                 every: float = 2.0) -> None:
        self.rundir, self.stream, self.every = rundir, stream or sys.stdout, every
        self._last_status = ""
        self._last_write = 0.0
        self._last_tenth = -1

    def _log(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", file=self.stream, flush=True)

    def status(self, text: str) -> None:
        if text != self._last_status:
            self._last_status = text
            self._log(text)

    def info(self, text: str) -> None:
        self._log(text)

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - self._last_write >= self.every:
            self._last_write = now
            self.rundir.update(progress={"done": done, "total": total})
        tenth = 10 * done // total if total else 10
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self._log(f"computing: {done}/{total} tasks")


def drive(
    spec_path: Path, site: str | None, jobs: int | str | None, run_id: str, *,
    summary_file: Path | None = None, trust: bool = False,
    reporter: run.Reporter | None = None, keep_logs: bool = False,
) -> run.Summary:
    """Run a batch run's driver inside its allocation, adopting run directory ``run_id``.

    Refused outside a SLURM job. Whatever happens, the state ends in ``state.json``
    and, with ``summary_file``, a short JSON summary (exit code, seconds, output).
    """
    job_id = os.environ.get("SLURM_JOB_ID")
    if not job_id:
        raise UsageError("hpcscale driver runs inside a SLURM batch job (SLURM_JOB_ID is not "
                         "set); here use `hpcscale submit`, or `hpcscale sbatch` for a batch job")
    if not RUN_ID_RE.match(run_id):
        raise UsageError(f"--run-id {run_id!r}: expected an id such as 20260101-120000-ab12cd")
    t0 = time.monotonic()
    rd = RunDir.existing(run_id)
    outcome: dict[str, Any] = {"run_id": run_id, "batch_job": job_id, "exit_code": 1}
    try:
        prep = _prepare(jobspec.load_any(spec_path), site, jobs, trust)
        prep = dataclasses.replace(prep, profile=in_allocation(prep.profile))
        outcome["output"] = prep.spec.output_path
        rd = RunDir.create(prep.spec, prep.profile, prep.plan, trusted=trust,
                           profile_files=prep.profile_files, run_id=run_id)
        listen = (prep.profile.slurm.interface
                  if isinstance(prep.profile, SlurmProfile) else None)
        rd.update(batch=True, batch_job=job_id, pid=os.getpid(), host=os.uname().nodename,
                  driver_node=os.environ.get("SLURMD_NODENAME", os.uname().nodename),
                  scheduler_interface=listen, error=None)
        reporter = reporter or LogReporter(rd)
        reporter.info(f"run {run_id}: driver in batch job {job_id} on "
                      f"{os.environ.get('SLURMD_NODENAME', os.uname().nodename)}, scheduler on "
                      f"interface {listen or '(default)'}")
        summary: run.Summary
        if isinstance(prep, filemap.MapPrepared):
            for line in prep.lines():
                reporter.info(line)
            summary = mapped = filemap.execute(prep, reporter, run_dir=rd, keep_logs=keep_logs)
            mapped.check()  # files failed: the batch job ends with exit code 1
        else:
            for line in prep.plan.lines():
                reporter.info(line)
            summary = run.execute(prep, reporter, run_dir=rd, keep_logs=keep_logs)
        outcome.update(dataclasses.asdict(summary), exit_code=0, state=RunState.DONE)
        return summary
    except KeyboardInterrupt:
        outcome.update(exit_code=130, state=RunState.CANCELLED)
        raise
    except Exception as err:
        message = str(err) if isinstance(err, HpcscaleError) else f"{type(err).__name__}: {err}"
        outcome.update(exit_code=getattr(err, "exit_code", 1), state=RunState.FAILED, error=message)
        if rd is not None and rd.status().state not in (RunState.FAILED, RunState.CANCELLED):
            rd.update(state=RunState.FAILED, error=message)  # failed before execute() took over
        raise
    finally:
        outcome["seconds"] = round(time.monotonic() - t0, 3)
        if rd is not None:
            rd.update(exit_code=outcome["exit_code"])
        if summary_file is not None:
            write_summary(summary_file, outcome)


def write_summary(path: Path, outcome: dict[str, Any]) -> None:
    """The short end-of-run summary: run id, state, exit code, seconds, output, error."""
    keys = ("run_id", "state", "exit_code", "seconds", "output", "error", "batch_job",
            "jobs", "workers", "run_dir")
    data = {k: outcome[k] for k in keys if k in outcome}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
