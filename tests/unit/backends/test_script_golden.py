"""Golden files of the worker job scripts rendered for the built-in profiles.

On an intended change, accept the new scripts with:
    HPCSCALE_UPDATE_GOLDEN=1 pytest tests/unit/backends/test_script_golden.py
and review the diff of tests/golden/ before committing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import assert_golden, write_profile
from hpcscale import backends
from hpcscale.config import profiles

GOLDEN = Path(__file__).resolve().parents[2] / "golden"


def _render(name: str, **kw: str) -> str:
    script = backends.job_script(profiles.load(name).profile, **kw)
    return script.replace(sys.executable, "<python>")


@pytest.mark.parametrize("name", ["testbed", "example-slurm"])
def test_builtin_profile_script_matches_golden(name: str) -> None:
    got = _render(name)
    assert_golden(GOLDEN / f"{name}.sbatch", got, f"rendered script for {name}")


@pytest.mark.parametrize("name", ["testbed", "example-slurm"])
def test_rendered_script_is_valid_bash(name: str, tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(_render(name))
    subprocess.run(["bash", "-n", str(script)], check=True)


@pytest.mark.parametrize(
    ("memory", "processes", "mem_line", "limit"),
    [
        ("4GiB", 1, "--mem=4096M", "--memory-limit 4294967296"),
        ("4GB", 1, "--mem=3814M", f"--memory-limit {3814 * 1024**2}"),
        ("28GB", 2, "--mem=26702M", f"--memory-limit {26702 * 1024**2 // 2}"),
        ("6GiB", 3, "--mem=6144M", f"--memory-limit {2 * 1024**3}"),
    ],
)
def test_memory_units_exact_in_script(
    user_sites: Path, memory: str, processes: int, mem_line: str, limit: str
) -> None:
    write_profile(user_sites, "m", f'[slurm]\npartition = "p"\ncores = {processes * 2}\n'
                  f'processes = {processes}\nmemory = "{memory}"\n')
    script = _render("m")
    assert f"#SBATCH {mem_line}\n" in script
    assert f" {limit} " in script


def test_every_profile_value_reaches_script(user_sites: Path) -> None:
    write_profile(user_sites, "full", """
[slurm]
partition = "gpu,cpu"
account = "lab42"
qos = "high"
walltime = "1-02:00:00"
cores = 4
processes = 2
memory = "8GiB"
interface = "ib0"
extra_directives = ["--constraint=skylake", "--exclusive"]
prologue = ["module load python/3.11", "export OMP_NUM_THREADS=1"]
python = "/opt/envs/lab/bin/python"
local_directory = "$TMPDIR"
""")
    script = _render("full", log_directory="/logs")
    lines = script.splitlines()
    for expected in ["#SBATCH -p gpu,cpu", "#SBATCH -A lab42", "#SBATCH -t 1-02:00:00",
                     "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8192M", "#SBATCH --qos=high",
                     "#SBATCH --constraint=skylake", "#SBATCH --exclusive",
                     "#SBATCH -e /logs/hpcscale-%J.err", "#SBATCH -o /logs/hpcscale-%J.out",
                     "module load python/3.11", "export OMP_NUM_THREADS=1"]:
        assert expected in lines, expected
    worker = lines[-1]
    assert worker.startswith("exec /opt/envs/lab/bin/python -m distributed.cli.dask_worker ")
    for part in ["--nthreads 2", "--nworkers 2", "--interface ib0", "--local-directory $TMPDIR",
                 f"--memory-limit {4 * 1024**3}"]:
        assert part in worker
    # every #SBATCH line comes before the first command, or sbatch ignores it
    first_cmd = next(i for i, ln in enumerate(lines[1:], 1) if ln and not ln.startswith("#"))
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_cmd:])


def test_rendering_touches_no_filesystem(user_sites: Path, tmp_path: Path) -> None:
    logs = tmp_path / "not-created"
    write_profile(user_sites, "l", f'[slurm]\npartition = "p"\nlog_directory = "{logs}"\n')
    assert "#SBATCH -e " + str(logs) in _render("l")
    assert not logs.exists()
