"""The local backend: a dask LocalCluster on this machine, laid out as the plan says."""

from __future__ import annotations

import logging
import os
from typing import Any

from hpcscale.config.profiles import LocalProfile
from hpcscale.sizing import Plan


def cluster_kwargs(profile: LocalProfile, plan: Plan) -> dict[str, Any]:
    """LocalCluster arguments: the plan's workers and threads (:func:`hpcscale.sizing.plan`
    decides them: by default one worker with a thread per core), the profile's memory
    and scratch directory."""
    settings = profile.local
    kwargs: dict[str, Any] = {
        "n_workers": plan.jobs,
        "threads_per_worker": plan.threads_per_worker,
        "processes": True,
        "dashboard_address": "127.0.0.1:0",
        # A failed task's traceback would reach the terminal from each worker;
        # the driver reports the failure in one line instead.
        "silence_logs": logging.CRITICAL,
    }
    if settings.memory:
        kwargs["memory_limit"] = plan.worker_memory
    if settings.local_directory:
        kwargs["local_directory"] = os.path.expandvars(settings.local_directory)
    return kwargs
