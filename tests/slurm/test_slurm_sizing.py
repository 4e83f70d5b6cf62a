"""`--jobs auto` and the live limits on the testbed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr

from helpers import Cli, write_profile

pytestmark = pytest.mark.slurm


def _spec(
    tmp_path: Path, shape: tuple[int, ...], chunks: tuple[int, ...]
) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(2).random(shape).astype("float32")
    inp = tmp_path / f"in-{shape[0]}.zarr"
    zarr.create_array(inp, shape=shape, chunks=chunks, dtype="float32")[...] = data
    spec = tmp_path / f"job-{shape[0]}.toml"
    spec.write_text(f'[input]\npath = "{inp}"\n[[steps]]\nreduce = "sum"\naxis = [0]\n'
                    f'[output]\npath = "{tmp_path / f"out-{shape[0]}.zarr"}"\n')
    return spec, data.astype("float64").sum(axis=0)


def test_auto_submits_fewer_jobs_on_small_input(testbed: Path, cli: Cli, tmp_path: Path) -> None:
    spec, want = _spec(tmp_path, (2, 30, 30), (2, 30, 30))  # one chunk
    r = cli("--json", "submit", str(spec), "--site", "testbed")  # --jobs auto is the default
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert len(summary["jobs"]) == 1  # fewer than the profile's max_jobs = 3
    got = xr.open_zarr(tmp_path / "out-2.zarr")
    np.testing.assert_allclose(next(iter(got.data_vars.values())).values, want, rtol=1e-6)


def test_auto_reaches_the_cap_on_larger_input(testbed: Path, cli: Cli, tmp_path: Path) -> None:
    spec, _ = _spec(tmp_path, (24, 30, 30), (2, 30, 30))  # 12 chunks: 6 jobs wanted
    plan = cli("plan", str(spec), "--site", "testbed")
    assert plan.code == 0, plan
    assert "6 job(s) give each of the 1 thread(s) per job at least 2 of the 12 tasks" in plan.out
    assert "capped at 3 job(s) by max_jobs of site testbed" in plan.out
    r = cli("--json", "submit", str(spec), "--site", "testbed")
    assert r.code == 0, r
    assert len(json.loads(r.out)["jobs"]) == 3


def test_walltime_over_partition_maxtime_refused_before_submitting(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path
) -> None:
    write_profile(user_sites, "toolong", 'extends = "testbed"\n[slurm]\npartition = "short"\n'
                  'walltime = "00:10:00"\n')
    spec, _ = _spec(tmp_path, (2, 30, 30), (2, 30, 30))
    r = cli("submit", str(spec), "--site", "toolong")
    assert r.code == 2, r
    assert "walltime 00:10:00 is over partition short's MaxTime 00:01:00" in r.err
    runs = Path(os.environ["HPCSCALE_RUNS_DIR"])
    assert not runs.exists() or not any(runs.iterdir()), "a run was started"
    assert not Path(tmp_path / "out-2.zarr").exists()


def test_several_jobs_per_node_are_planned(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path
) -> None:
    # the testbed's 3 nodes have 2 CPUs each: six 1-core jobs fit, not three
    write_profile(user_sites, "six", 'extends = "testbed"\n[slurm]\npartition = "debug"\n'
                  "max_jobs = 8\n")
    spec, _ = _spec(tmp_path, (24, 30, 30), (2, 30, 30))
    r = cli("plan", str(spec), "--site", "six", "--jobs", "8")
    assert r.code == 0, r
    assert "capped at 6 job(s) by the 6 that fit at once on the 3 node(s) of partition debug " \
           "(2 per node, by cores and memory)" in r.out
    assert "jobs            6 x 1 worker(s)" in r.out
