"""SLURM's commands: run one, and the job queries and cancels a run makes.

Queries are batched (one ``squeue`` for all of a run's jobs, never one per job), and
failures raise :class:`SlurmCommandError` carrying the command, its exit code and its
output; a controller that does not answer is :class:`SlurmUnavailable`: unknown, not
"gone".
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hpcscale import units
from hpcscale.config.profiles import SlurmSettings
from hpcscale.errors import SubmissionError
from hpcscale.slurm.directives import sbatch_directives
from hpcscale.slurm.parse import ExpectedStart, parse_oneliner, parse_test_only

TIMEOUT = 30.0


class SlurmCommandError(SubmissionError):
    """A SLURM command failed; ``str()`` is one line with SLURM's own message."""

    def __init__(self, cmd: Sequence[str], code: int, stdout: str, stderr: str) -> None:
        self.cmd = list(cmd)
        self.code = code
        self.stdout = stdout
        self.stderr = stderr
        said = (stderr.strip() or stdout.strip()).replace("\n", " | ")
        super().__init__(f"`{' '.join(self.cmd)}` failed (exit {code}): {said or 'no output'}")


def available() -> bool:
    """Whether SLURM's client commands are on PATH."""
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def run(cmd: Sequence[str], *, timeout: float = TIMEOUT, check: bool = True) -> str:
    """Run one SLURM command and return its stdout."""
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as err:
        raise SlurmCommandError(cmd, 127, "", f"{cmd[0]}: command not found") from err
    except subprocess.TimeoutExpired as err:
        raise SlurmCommandError(cmd, 124, "", f"no answer within {timeout:.0f} s") from err
    if check and proc.returncode != 0:
        raise SlurmCommandError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@dataclass(frozen=True)
class JobState:
    job_id: str
    name: str
    state: str  # PENDING, RUNNING, COMPLETING, ...
    reason: str  # SLURM's reason, e.g. Resources, PartitionTimeLimit
    nodes: str
    partition: str


class SlurmUnavailable(SlurmCommandError):
    """SLURM did not answer a query (controller down, ``Socket timed out``...).

    It says nothing about the jobs: callers treat their states as unknown,
    never as gone.
    """


# squeue's words when every job it was asked about has left the queue: an answer.
_GONE = "Invalid job id specified"


def queue(job_ids: Iterable[str] = (), *, name: str | None = None) -> dict[str, JobState]:
    """States of the given jobs (or the user's jobs called ``name``) in one ``squeue`` call.

    Finished jobs are simply absent. Raises :class:`SlurmUnavailable` when squeue
    fails for any other reason (the controller did not answer): no answer is
    not "every job is gone".
    """
    ids = [j for j in job_ids if j]
    cmd = ["squeue", "--noheader", "--format=%i|%j|%T|%r|%N|%P"]
    if ids:
        cmd.append("--jobs=" + ",".join(ids))
    elif name is not None:
        cmd += ["--name=" + name, "--user=" + user()]
    else:
        return {}
    try:
        out = run(cmd)
    except SlurmCommandError as err:
        # squeue exits 1 when every listed job is gone: that is an answer
        if ids and err.code == 1 and _GONE in err.stderr and not err.stdout.strip():
            return {}
        raise SlurmUnavailable(err.cmd, err.code, err.stdout, err.stderr) from err
    states = {}
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) != 6:
            continue
        states[parts[0]] = JobState(*parts)
    return states


def submit_script(path: os.PathLike[str] | str) -> str:
    """``sbatch`` a script; returns the job id (an array's: its tasks are ``<id>_<i>``)."""
    out = run(["sbatch", "--parsable", os.fspath(path)])
    job_id = out.strip().split(";")[0]
    if not job_id.isdigit():
        raise SubmissionError(f"sbatch {os.fspath(path)}: no job id in its answer "
                              f"{out.strip()!r}")
    return job_id


def job_node(job_id: str) -> str | None:
    """The node a job ran on, from SLURM's record of it (kept a while after it ended)."""
    try:
        out = run(["scontrol", "show", "job", job_id, "--oneliner"], timeout=10)
    except SlurmCommandError:
        return None
    for rec in parse_oneliner(out):
        for key in ("BatchHost", "NodeList"):
            if rec.get(key) not in (None, "", "(null)"):
                return rec[key]
    return None


def cancel(job_ids: Iterable[str]) -> None:
    """Cancel jobs with one ``scancel``; jobs already gone are not an error. squeue's
    line for an array's pending tasks (``123_[4-9%3]``) cancels the whole array (``123``)."""
    ids = list(dict.fromkeys(j.split("_[", 1)[0] for j in job_ids if j))
    if ids:
        run(["scancel", *ids], check=False)


def user() -> str:
    """The user whose jobs and associations hpcscale asks about."""
    import getpass

    return os.environ.get("USER") or getpass.getuser()


def expected_start(s: SlurmSettings, *, jobs: int, walltime: int,
                   timeout: float = 10.0) -> ExpectedStart | None:
    """SLURM's expected start of ``jobs`` worker jobs of the profile with ``walltime``,
    from ``sbatch --test-only`` (nothing is submitted). One job is asked for with a
    worker job's own directives; several as one allocation of that many tasks, which
    starts when all of them can run at once. None when SLURM gives no answer: unknown,
    never an error."""
    per_cpu = max(1, units.slurm_mem_bytes(s.memory) // s.cores // units.MIB)
    memory = units.slurm_mem(s.memory) if jobs == 1 else f"{per_cpu}M"
    cmd = ["sbatch", "--test-only", "--wrap=true", *sbatch_directives(
        s, job_name="hpcscale-test-only", walltime=walltime, cpus=s.cores, memory=memory,
        tasks=jobs)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return parse_test_only(proc.stderr + "\n" + proc.stdout)
