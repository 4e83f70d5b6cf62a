"""One run: job spec + profile -> plan -> cluster -> graph -> Zarr -> summary.

:func:`prepare` does everything that can fail on bad input (profile, input,
steps, output path, plan) and submits nothing; :func:`execute` then starts
the cluster, runs the graph and always tears the jobs down, on errors and
Ctrl-C too."""

from hpcscale.run.calibration import Calibration, calibrate
from hpcscale.run.execution import execute, ssh_forward
from hpcscale.run.preparation import choose_site, fingerprint, prepare
from hpcscale.run.types import Prepared, Reporter, Silent, Summary

__all__ = ["Calibration", "Prepared", "Reporter", "Silent", "Summary", "calibrate", "choose_site",
           "execute", "fingerprint", "prepare", "ssh_forward"]
