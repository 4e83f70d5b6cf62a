"""The Python API on the real testbed: hpcscale.cluster() runs the user's own dask code
on SLURM jobs and leaves nothing in squeue, also when the block raises; the notebook
example of docs/map.md runs there as written, on the testbed site."""

from __future__ import annotations

import operator
import os
import shutil
import subprocess
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import hpcscale
from helpers import REPO
from hpcscale import demo as sample
from hpcscale.rundir import RunDir

pytestmark = pytest.mark.slurm


def _jobs(name: str) -> list[str]:
    """The run's jobs in squeue (id and state), COMPLETING ones aside."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %T", f"--name={name}"],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return [line for line in out if line.strip() and not line.endswith(" COMPLETING")]


def test_a_cluster_session_runs_user_code_on_two_jobs_and_leaves_none(testbed: Path) -> None:
    x = np.random.default_rng(2).random((300, 200))
    with hpcscale.cluster("testbed", jobs=2, quiet=True) as client:
        name = RunDir.find("last").job_name
        running = _jobs(name)
        got = float(da.from_array(x, chunks=50).std().compute())
        nodes = {w["host"] for w in client.scheduler_info()["workers"].values()}
    assert len(running) == 2, running
    assert all(j.endswith(" RUNNING") for j in running), running
    assert len(nodes) >= 1
    assert got == pytest.approx(float(x.std()), rel=1e-12)
    assert _jobs(name) == []
    assert RunDir.find("last").status().state == "done"


def _session_that_raises(seen: list[list[str]]) -> None:
    with hpcscale.cluster("testbed", jobs=2, quiet=True) as client:
        seen.append(_jobs(RunDir.find("last").job_name))
        # a function the workers can import (one defined in this test module is pickled
        # by reference, and the workers do not have the tests on their path)
        client.submit(operator.truediv, 1, 0).result()


def test_a_cluster_session_whose_block_raises_leaves_no_job(testbed: Path) -> None:
    seen: list[list[str]] = []
    with pytest.raises(ZeroDivisionError):
        _session_that_raises(seen)
    assert len(seen[0]) == 2, seen
    assert _jobs(RunDir.find("last").job_name) == []
    assert RunDir.find("last").status().state == "failed"


def test_the_notebook_example_of_the_docs_runs_on_the_testbed(
    testbed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (REPO / "docs" / "map.md").read_text(encoding="utf-8")
    start = text.index("```python\nimport json")
    block = text[start + len("```python\n"): text.index("```\n", start + 10)]
    assert 'site = "local"' in block
    monkeypatch.chdir(tmp_path)
    sample.make_all(Path("hpcscale-demo"))
    shutil.copytree(REPO / "jobs", tmp_path / "jobs")
    shutil.copytree(REPO / "docs" / "examples", tmp_path / "docs" / "examples")
    exec(compile(block.replace('site = "local"', 'site = "testbed"'), "map.md", "exec"),
         {"__name__": "__docs__"})
    printed = capsys.readouterr().out
    assert "3 ok, 0 failed; index" in printed
    assert (tmp_path / "cleaned" / "index.csv").is_file()
    runs = [RunDir(p.name, p) for p in Path(os.environ["HPCSCALE_RUNS_DIR"]).iterdir()]
    assert {r.status().site for r in runs} == {"testbed"}
    assert len(runs) == 3  # the session, the job spec, the map
