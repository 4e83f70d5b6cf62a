"""Predictions from what this site has measured: the throughput model
(:mod:`~hpcscale.predict.model`) and a plan's numbers from it
(:mod:`~hpcscale.predict.estimate`). Pure: the run history and SLURM's expected
starts are read by :mod:`hpcscale.run.prediction` and handed over as data."""

from hpcscale.predict.estimate import (
    AUTO_EXTRA,
    AUTO_MARGIN,
    AUTO_STEP,
    Alternative,
    Evidence,
    Forecast,
    Start,
    choose_jobs,
    compute_seconds,
    duration,
    fitting_walltime,
    forecast,
    generations,
    job_need,
    lifetime,
    rounds,
)
from hpcscale.predict.model import (
    MIN_SPREAD,
    Observation,
    Signature,
    Startup,
    Throughput,
    fit_startup,
    fit_throughput,
)

__all__ = [
    "AUTO_EXTRA", "AUTO_MARGIN", "AUTO_STEP", "MIN_SPREAD", "Alternative", "Evidence",
    "Forecast", "Observation", "Signature", "Start", "Startup", "Throughput", "choose_jobs",
    "compute_seconds", "duration", "fit_startup", "fit_throughput", "fitting_walltime",
    "forecast", "generations", "job_need", "lifetime", "rounds",
]
