"""From a site profile and its plan to a running dask cluster: the backend seam.

Each backend is a module here (:mod:`~hpcscale.backends.slurm`,
:mod:`~hpcscale.backends.local`) for its own profile type; :func:`start` is the
one place that tells them apart. A new backend (PBS, srun inside an
allocation) is a module and a ``case`` below.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client, LocalCluster

from hpcscale.backends import local, threads
from hpcscale.backends.slurm import (
    DEATH_TIMEOUT,
    PLACEHOLDER_SCHEDULER,
    SUBMIT_ERRORS,
    job_script,
    slurm_job_kwargs,
    start_cluster,
)
from hpcscale.config.profiles import LocalProfile, SiteProfile, SlurmProfile
from hpcscale.rundir import RunDir
from hpcscale.sizing import Plan

__all__ = ["DEATH_TIMEOUT", "PLACEHOLDER_SCHEDULER", "SUBMIT_ERRORS", "job_script",
           "slurm_job_kwargs", "start"]

logger = logging.getLogger(__name__)


@contextmanager
def start(
    profile: SiteProfile, plan: Plan, *, job_name: str, run_dir: RunDir, security: bool = True,
    worker_extra_args: list[str] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Start the profile's cluster as ``plan`` lays it out (jobs, walltime, workers);
    always close it (every job cancelled) on exit. A plan ``in_process`` gets dask's
    threaded scheduler behind a Client's interface (:mod:`hpcscale.backends.threads`)."""
    cluster: Any
    if isinstance(profile, LocalProfile) and plan.in_process:
        with threads.ThreadsClient(plan.threads_per_worker, plan.worker_memory) as client:
            yield threads.ThreadsCluster(), client
        return
    match profile:
        case LocalProfile():
            cluster = LocalCluster(**local.cluster_kwargs(profile, plan))  # type: ignore[no-untyped-call]
        case SlurmProfile():
            cluster = start_cluster(profile, plan, job_name=job_name, run_dir=run_dir,
                                    security=security, worker_extra_args=worker_extra_args)
    try:
        with Client(cluster) as client:  # type: ignore[no-untyped-call]
            yield cluster, client
    finally:
        try:
            cluster.close()
        except Exception as err:
            # SpecCluster.close() asserts on a job sbatch refused; the run's own
            # error is the one to report, and the run sweeps the queue after this.
            logger.warning("closing the cluster: %s: %s", type(err).__name__, err)
