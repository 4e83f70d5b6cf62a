"""A finished run's report.html is drawn by a child process it does not wait for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from hpcscale.run import execution

WAIT = 120  # seconds: the child imports matplotlib and draws; it gets all of them on a busy machine


def _run(tmp_path: Path, cli: Any) -> Path:
    data = np.arange(4 * 8 * 8, dtype="float32").reshape(4, 8, 8)
    zarr.create_array(tmp_path / "in.zarr", data=data, chunks=(2, 8, 8))
    res = cli("--json", "reduce", str(tmp_path / "in.zarr"), str(tmp_path / "out.zarr"),
              "--op", "mean", "--axis", "dim_0", "--site", "local")
    assert res.code == 0, res
    return Path(json.loads(res.out)["run_dir"])


def test_the_run_returns_and_a_child_draws_the_report(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(execution.REPORT_INLINE)
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    def popen(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(subprocess, "Popen", popen)
    run_dir = _run(tmp_path, cli)
    (child,) = started
    assert child.args == [sys.executable, "-m", "hpcscale.report", str(run_dir)]
    assert child.wait(WAIT) == 0
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert f"<h1>hpcscale run {run_dir.name}" in page
    assert 'class="missing"' not in page  # drawn after the summary was written: all there


def test_inside_a_slurm_job_the_report_is_drawn_before_the_run_returns(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(execution.REPORT_INLINE)
    monkeypatch.setenv("SLURM_JOB_ID", "12345")  # the job's end would kill a child
    monkeypatch.setattr(subprocess, "Popen", None)  # no child may be started
    run_dir = _run(tmp_path, cli)
    assert (run_dir / "report.html").is_file()


def test_the_child_writes_the_report_of_a_run_directory(tmp_path: Path, cli: Any) -> None:
    run_dir = _run(tmp_path, cli)
    (run_dir / "report.html").unlink()
    done = subprocess.run([sys.executable, "-m", "hpcscale.report", str(run_dir)],
                          capture_output=True, text=True, timeout=WAIT, check=False,
                          env={**os.environ})
    assert done.returncode == 0, done.stderr
    assert (run_dir / "report.html").is_file()
