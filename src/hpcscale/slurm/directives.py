"""The one place an sbatch directive is written from a profile.

A batch run's driver job, the doctor's probe job and (through dask-jobqueue's
own template) every worker job ask SLURM for the profile's partition,
account, QOS and extra directives; the job's own size and files differ.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from hpcscale import units
from hpcscale.config.profiles import SlurmSettings
from hpcscale.errors import UsageError

# What a path may hold to go unquoted into an #SBATCH line (sbatch does no shell quoting).
_SBATCH_PATH = re.compile(r"^/[A-Za-z0-9_./+\-@,=]*$")


def sbatch_path(path: Path, what: str) -> str:
    """``path`` (absolute) as an ``#SBATCH`` line can carry it; a one-line ``UsageError``
    naming ``what`` for spaces or shell characters."""
    text = str(path)
    if not _SBATCH_PATH.match(text):
        raise UsageError(f"{what} {text!r}: an #SBATCH line cannot carry this path (spaces or "
                         "shell characters); use a plainer directory")
    return text


def site_extras(s: SlurmSettings) -> list[str]:
    """The profile's directives beyond partition and account (dask-jobqueue takes
    those two, and the job's size, as arguments of their own): QOS and the extras."""
    return [*([f"--qos={s.qos}"] if s.qos else []), *s.extra_directives]


def sbatch_directives(
    s: SlurmSettings, *, job_name: str, walltime: int, cpus: int, memory: str,
    files: Sequence[str] = (), tasks: int = 1,
) -> list[str]:
    """The ``#SBATCH`` options of a one-node, one-task job of the profile: its name,
    where it runs (partition, account, QOS), its size, then ``files`` (``--chdir``,
    ``--output``, ``--error``, mail) and last the profile's extra directives.

    ``tasks`` > 1: one allocation of that many such tasks wherever they fit, each of
    ``cpus`` CPUs and ``memory`` per CPU (``--mem-per-cpu``): what ``sbatch
    --test-only`` is asked for as the stand-in of that many jobs running at once."""
    size = (["--nodes=1", "--ntasks=1", f"--cpus-per-task={cpus}", f"--mem={memory}"]
            if tasks == 1 else
            [f"--ntasks={tasks}", f"--cpus-per-task={cpus}", f"--mem-per-cpu={memory}"])
    return [
        f"--job-name={job_name}",
        f"--partition={s.partition}",
        *([f"--account={s.account}"] if s.account else []),
        *([f"--qos={s.qos}"] if s.qos else []),
        f"--time={units.format_walltime(walltime)}",
        *size,
        *files,
        *s.extra_directives,
    ]
