"""The SLURM backend: a dask-jobqueue ``SLURMCluster`` from a profile, and the job script
it submits.

Its job class fixes two things dask-jobqueue gets wrong for us:

* memory is exact: ``--mem`` is the profile's bytes in whole MiB (SLURM's
  unit) and each worker's ``--memory-limit`` is its exact share in bytes
  (dask-jobqueue rounds ``28GB`` to ``--mem=27G`` and the limit to 2 decimals);
* the worker is ``exec``-ed, so the SIGTERM SLURM sends before the walltime
  reaches the worker and it retires gracefully, instead of hitting a bash
  parent that dies and leaves the worker to be killed.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from dask_jobqueue.slurm import SLURMCluster, SLURMJob

from hpcscale import units
from hpcscale.config.profiles import SiteProfile, SlurmProfile, SlurmSettings
from hpcscale.rundir import RunDir
from hpcscale.sizing import Plan
from hpcscale.slurm.directives import site_extras

PLACEHOLDER_SCHEDULER = "tcp://<scheduler-address>:8786"
# Workers stop trying to reach a scheduler that is gone after this long, so a
# killed driver never leaves workers holding allocations.
DEATH_TIMEOUT = 60


# sbatch's own words when it refused a job, by job name (one name per run):
# dask-jobqueue only logs them, and the run would wait for workers that never come.
SUBMIT_ERRORS: dict[str, str] = {}


class HpcscaleSLURMJob(SLURMJob):
    """SLURMJob with exact memory, an ``exec``-ed worker, and sbatch errors kept."""

    async def _submit_job(self, script_filename: str) -> str:
        try:
            out: str = await super()._submit_job(script_filename)  # type: ignore[no-untyped-call]
        except RuntimeError as err:
            said = str(err).split("stderr:", 1)[-1]
            SUBMIT_ERRORS[str(self.job_name)] = " ".join(said.split()) or str(err)
            raise
        return out

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._command_template = "exec " + self._command_template

    @property
    def worker_process_memory(self) -> str:
        return str(int(self.worker_memory // self.worker_processes))


class HpcscaleSLURMCluster(SLURMCluster):
    job_cls = HpcscaleSLURMJob


def _python(settings: SlurmSettings) -> str:
    return settings.python or sys.executable


def slurm_job_kwargs(
    settings: SlurmSettings,
    *,
    job_name: str = "hpcscale",
    log_directory: str | None = None,
    walltime: int | None = None,
    worker_extra_args: list[str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``HpcscaleSLURMCluster``/``HpcscaleSLURMJob`` from a profile."""
    granted = units.slurm_mem_bytes(settings.memory)
    return {
        "queue": settings.partition,
        "account": settings.account,
        "walltime": units.format_walltime(walltime or settings.walltime_seconds),
        "cores": settings.cores,
        "processes": settings.processes,
        "memory": str(granted),
        "job_mem": units.slurm_mem(settings.memory),
        "job_cpu": settings.cores,
        "interface": settings.worker_interface or settings.interface,
        "job_extra_directives": site_extras(settings),
        "job_script_prologue": list(settings.prologue),
        "python": _python(settings),
        "local_directory": settings.local_directory,
        "log_directory": settings.log_directory or log_directory,
        "job_name": job_name,
        "death_timeout": DEATH_TIMEOUT,
        # A nanny is a second Python process that starts the worker process:
        # seconds of start-up on every job. It is needed to run several
        # worker processes per job; with one, SLURM's own memory limit and
        # the job watcher do what it would (a worker over its memory is lost
        # and replaced).
        "nanny": settings.processes > 1,
        "worker_extra_args": list(worker_extra_args or []),
        "shebang": "#!/usr/bin/env bash",
    }


def job_script(
    profile: SiteProfile, *, job_name: str = "hpcscale", log_directory: str | None = None,
    walltime: int | None = None,
) -> str:
    """The exact sbatch script each worker job is submitted with.

    Rendered by dask-jobqueue itself (``job_script()``); the scheduler address
    is a placeholder until a run starts one. Nothing is submitted or started.
    ``walltime`` (seconds) replaces the profile's, as a run's plan does.
    """
    if not isinstance(profile, SlurmProfile):
        raise ValueError(f"profile {profile.name} is not a SLURM profile")
    kwargs = slurm_job_kwargs(profile.slurm, job_name=job_name, log_directory=log_directory,
                              walltime=walltime)
    # Job() creates log_directory; rendering must not touch the filesystem,
    # so the two lines it would add are added here instead.
    log_dir = kwargs.pop("log_directory")
    job = HpcscaleSLURMJob(PLACEHOLDER_SCHEDULER, name="dummy-name", **kwargs)
    script: str = job.job_script()  # type: ignore[no-untyped-call]
    if log_dir is not None:
        # Same lines dask-jobqueue writes when it has a log directory.
        header = f"#SBATCH -e {log_dir}/{job_name}-%J.err\n#SBATCH -o {log_dir}/{job_name}-%J.out\n"
        script = script.replace(f"#SBATCH -J {job_name}\n", f"#SBATCH -J {job_name}\n{header}", 1)
    return script


def start_cluster(
    profile: SlurmProfile, plan: Plan, *, job_name: str, run_dir: RunDir, security: bool = True,
    worker_extra_args: list[str] | None = None,
) -> HpcscaleSLURMCluster:
    """A dask-jobqueue cluster of the profile's jobs, scaled to the plan's job count, with
    the plan's walltime. The scheduler is TLS-only with per-run certificates kept in
    ``run_dir.tls`` (0700, keys 0600) and the dashboard listens on localhost."""
    logs = run_dir.logs
    logs.mkdir(parents=True, exist_ok=True)
    kwargs = slurm_job_kwargs(
        profile.slurm, job_name=job_name, log_directory=str(logs), walltime=plan.walltime,
        worker_extra_args=worker_extra_args,
    )
    if security:
        tls = run_dir.tls
        tls.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(tls, 0o700)
        kwargs["security"] = True
        kwargs["shared_temp_directory"] = str(tls)
    kwargs["scheduler_options"] = {"dashboard_address": "127.0.0.1:0"}
    if profile.slurm.interface:
        kwargs["scheduler_options"]["interface"] = profile.slurm.interface
    cluster = HpcscaleSLURMCluster(**kwargs)
    cluster.scale(jobs=plan.jobs)  # type: ignore[no-untyped-call]
    return cluster
