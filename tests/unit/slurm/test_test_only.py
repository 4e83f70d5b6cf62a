"""``sbatch --test-only``: SLURM's expected start, parsed from canned output; never an error."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import write_profile
from hpcscale import slurm
from hpcscale.config import profiles
from hpcscale.slurm import commands
from hpcscale.slurm.directives import sbatch_directives

# What sbatch 22.05 writes to stderr (seen on the testbed), and other shapes of the same line.
CANNED = [
    ("sbatch: Job 1285 to start at 2026-12-01T03:16:18 using 1 processors on nodes c1 in "
     "partition debug\n", ("2026-12-01T03:16:18", 1, "c1", "debug")),
    ("sbatch: Job 1286 to start at 2026-12-01T03:16:18 using 6 processors on nodes c[1-3] in "
     "partition debug\n", ("2026-12-01T03:16:18", 6, "c[1-3]", "debug")),
    ("sbatch: Job 77 to start at 2031-05-02T23:59:00 using 128 processors on nodes "
     "cn[0001-0004],cn0100 in partition compute\n",
     ("2031-05-02T23:59:00", 128, "cn[0001-0004],cn0100", "compute")),
]
REFUSED = [
    "allocation failure: Requested node configuration is not available\n",
    "sbatch: error: Batch job submission failed: Invalid account or account/partition "
    "combination specified\n",
    "sbatch: error: --test-only is disabled on this cluster\n",
    "",
]


@pytest.mark.parametrize(("text", "expected"), CANNED)
def test_the_expected_start_is_parsed(text: str, expected: tuple[str, int, str, str]) -> None:
    found = slurm.parse_test_only(text)
    assert found is not None
    assert (found.start, found.processors, found.nodes, found.partition) == expected


@pytest.mark.parametrize("text", REFUSED)
def test_no_expected_start_is_none(text: str) -> None:
    assert slurm.parse_test_only(text) is None


def _settings(user_sites: Path) -> profiles.SlurmSettings:
    write_profile(user_sites, "s", '[slurm]\npartition = "p"\naccount = "a"\ncores = 4\n'
                  'memory = "8GiB"\nextra_directives = ["--constraint=x"]\n')
    profile = profiles.load("s").profile
    assert isinstance(profile, profiles.SlurmProfile)
    return profile.slurm


def test_one_job_is_asked_with_a_worker_jobs_own_directives(user_sites: Path) -> None:
    s = _settings(user_sites)
    assert sbatch_directives(s, job_name="j", walltime=600, cpus=4, memory="8192M") == [
        "--job-name=j", "--partition=p", "--account=a", "--time=00:10:00", "--nodes=1",
        "--ntasks=1", "--cpus-per-task=4", "--mem=8192M", "--constraint=x"]
    # several jobs: one allocation of that many tasks, memory per CPU
    assert sbatch_directives(s, job_name="j", walltime=600, cpus=4, memory="2048M",
                             tasks=3) == [
        "--job-name=j", "--partition=p", "--account=a", "--time=00:10:00", "--ntasks=3",
        "--cpus-per-task=4", "--mem-per-cpu=2048M", "--constraint=x"]


def _fake_run(code: int, stderr: str, seen: list[list[str]]) -> Any:
    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, code, "", stderr)
    return run


def test_expected_start_asks_sbatch_test_only(user_sites: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(user_sites)
    seen: list[list[str]] = []
    monkeypatch.setattr(commands.subprocess, "run", _fake_run(0, CANNED[1][0], seen))
    found = slurm.expected_start(s, jobs=3, walltime=900)
    assert found is not None
    assert found.start == "2026-12-01T03:16:18"
    assert seen[0][:3] == ["sbatch", "--test-only", "--wrap=true"]
    assert "--ntasks=3" in seen[0]
    assert "--mem-per-cpu=2048M" in seen[0]
    assert "--time=00:15:00" in seen[0]


@pytest.mark.parametrize("how", ["refused", "missing", "hangs"])
def test_no_answer_is_unknown_never_an_error(user_sites: Path, monkeypatch: pytest.MonkeyPatch,
                                             how: str) -> None:
    s = _settings(user_sites)

    def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        if how == "missing":
            raise FileNotFoundError("sbatch")
        if how == "hangs":
            raise subprocess.TimeoutExpired(cmd, 10)
        return subprocess.CompletedProcess(cmd, 1, "", REFUSED[0])

    monkeypatch.setattr(commands.subprocess, "run", run)
    assert slurm.expected_start(s, jobs=1, walltime=600) is None
