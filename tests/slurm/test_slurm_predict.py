"""The plan predicts from what the testbed measured (issue 15): after one run of a job, the
plan of a 4x larger input of the same kind, its walltime = "auto", SLURM's expected
start, and worker generations past MaxTime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from scipy import ndimage

from helpers import REPO, Cli, write_profile

pytestmark = pytest.mark.slurm

# A 9x9 median per 512x512 plane: a few tenths of a second a chunk on the testbed, so
# that compute, not the fixed costs of a run, is what a run of a few dozen chunks measures.
STEP = '[[steps]]\nfilter = "median"\nsize = [1, 9, 9]\n'
SIDE = 512


def _input(tmp_path: Path, planes: int) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(planes).random((planes, SIDE, SIDE)).astype("float32")
    path = tmp_path / f"in-{planes}.zarr"
    zarr.create_array(path, shape=data.shape, chunks=(1, SIDE, SIDE), dtype="float32")[...] = data
    return path, data


def _spec(tmp_path: Path, inp: Path, name: str, run: str = "") -> Path:
    spec = tmp_path / f"{name}.toml"
    spec.write_text(f'[input]\npath = "{inp}"\n{STEP}[output]\npath = "{tmp_path / name}.zarr"\n'
                    f"{run}", encoding="utf-8")
    return spec


def test_the_plan_predicts_a_4x_larger_run_from_one_run(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path,
) -> None:
    small, _ = _input(tmp_path, 12)
    large, data = _input(tmp_path, 48)
    first = cli("--json", "submit", str(_spec(tmp_path, small, "small")), "--site", "testbed",
                "--jobs", "2")
    assert first.code == 0, first
    measured_small = json.loads(first.out)["compute_s"]

    spec = _spec(tmp_path, large, "large", run='[run]\nwalltime = "auto"\n')
    planned = cli("--json", "plan", str(spec), "--site", "testbed", "--jobs", "2")
    assert planned.code == 0, planned
    plan = json.loads(planned.out)
    print("\n".join(plan["plan"]))  # shown with -s: docs/sizing.md's example
    predicted = plan["prediction"]
    assert predicted["source"] == ("history of 1 run on site testbed "
                                   "(same steps, input and chunk size)")
    # walltime = "auto" asks for far less than the testbed profile's 30 minutes
    assert plan["walltime"] < 30 * 60
    assert any('(walltime = "auto")' in line for line in plan["plan"]), plan["plan"]
    # what plan --json carries: predicted seconds, CPU-hours, SLURM's expected start
    assert predicted["compute_s"] > 0
    assert predicted["cpu_hours_requested"] == pytest.approx(2 * plan["walltime"] / 3600, 1e-3)
    assert predicted["cpu_hours_predicted"] > 0
    assert predicted["start"] is not None  # the testbed's SLURM answers sbatch --test-only
    assert predicted["start_wait_s"] >= 0

    second = cli("--json", "submit", str(spec), "--site", "testbed", "--jobs", "2")
    assert second.code == 0, second  # the run completes within its "auto" walltime
    summary = json.loads(second.out)
    measured = summary["compute_s"]
    ratio = predicted["compute_s"] / measured
    print(f"predicted {predicted['compute_s']:.1f} s, measured {measured:.1f} s")
    assert 1 / 1.5 <= ratio <= 1.5, (
        f"predicted {predicted['compute_s']:.1f} s, measured {measured:.1f} s "
        f"(the run of a quarter of the input measured {measured_small:.1f} s)")
    out = xr.open_zarr(tmp_path / "large.zarr")
    got = next(iter(out.data_vars.values())).values[:4]
    np.testing.assert_allclose(got, ndimage.median_filter(data[:4], size=(1, 9, 9)))
    # the run's own record holds the walltime it asked for and the prediction it had
    record = json.loads((Path(summary["run_dir"]) / "plan.json").read_text(encoding="utf-8"))
    assert record["walltime"] == plan["walltime"]
    assert record["forecast"]["compute_s"] == pytest.approx(predicted["compute_s"])
    report = (Path(summary["run_dir"]) / "report.html").read_text(encoding="utf-8")
    assert "x the prediction" in report

    # A run predicted past the partition's MaxTime (debug: 1 h) says how many generations of
    # workers it needs: the same site with walltime = "auto", planned on a much larger
    # input (only its metadata is written: plan reads no data).
    profile = (REPO / "site-configs" / "testbed.toml").read_text(encoding="utf-8")
    write_profile(user_sites, "testbed", profile.replace('walltime = "00:30:00"',
                                                         'walltime = "auto"'))
    huge = tmp_path / "huge-in.zarr"
    zarr.create_array(huge, shape=(40_000, SIDE, SIDE), chunks=(1, SIDE, SIDE), dtype="float32")
    far = cli("--json", "plan", str(_spec(tmp_path, huge, "huge")), "--site", "testbed",
              "--jobs", "2")
    assert far.code == 0, far
    far_plan = json.loads(far.out)
    assert far_plan["walltime"] == 3600  # MaxTime
    generations = far_plan["prediction"]["generations"]
    assert generations >= 2
    assert any(line.startswith(f"  generations   {generations}: the run outlasts")
               for line in far_plan["plan"]), far_plan["plan"]
