"""The Python API (hpcscale.cluster, plan, submit, map) on the local default: the same
machinery and the same one-line errors as the commands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import hpcscale
from helpers import MEAN_SPEC, write_spec
from hpcscale.errors import HpcscaleError, UsageError
from hpcscale.rundir import RunDir


def _last_run() -> RunDir:
    return RunDir.find("last")


def test_import_hpcscale_does_not_load_the_api_until_used() -> None:
    import subprocess
    import sys

    code = ("import sys, hpcscale; assert 'hpcscale.api' not in sys.modules; "
            "assert 'distributed' not in sys.modules; hpcscale.plan; "
            "assert 'hpcscale.api' in sys.modules; print(hpcscale.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == hpcscale.__version__
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        hpcscale.nope  # type: ignore[attr-defined]  # noqa: B018


def test_a_cluster_session_runs_the_users_dask_code_and_is_recorded(
    capsys: pytest.CaptureFixture[str],
) -> None:
    x = np.arange(10_000, dtype=np.float64).reshape(100, 100)
    with hpcscale.cluster("local", jobs=2) as client:
        got = da.from_array(x, chunks=25).T.dot(x).sum().compute()
        workers = len(client.scheduler_info()["workers"])
    assert got == x.T.dot(x).sum()
    assert workers == 2
    printed = capsys.readouterr().out
    assert "hpcscale: run " in printed
    assert "dashboard http://127.0.0.1:" in printed
    status = _last_run().status()
    assert status.state == "done"
    assert client.status == "closed"


def test_a_session_whose_block_raises_ends_and_says_so() -> None:
    with pytest.raises(ZeroDivisionError), hpcscale.cluster("local", jobs=1,
                                                            quiet=True) as client:
        client.submit(lambda: 1 / 0).result()
    assert client.status == "closed"
    status = _last_run().status()
    assert status.state == "failed"
    assert "division by zero" in (status.error or "")


@pytest.mark.parametrize("jobs", [0, -1, 1.5, "many", True])
def test_bad_jobs_are_one_line(jobs: object) -> None:
    with (pytest.raises(UsageError, match=r"jobs=.*expected a whole number of at least 1"),
          hpcscale.cluster("local", jobs=jobs)):  # type: ignore[arg-type]
        pass


def test_an_unknown_site_is_the_commands_error() -> None:
    with pytest.raises(HpcscaleError, match="no-such-site"):
        hpcscale.plan("jobs/climate-mean.toml", site="no-such-site")


def test_plan_and_submit_a_job_spec(tmp_path: Path) -> None:
    import zarr

    data = np.random.default_rng(1).random((6, 10, 12)).astype("float32")
    zarr.create_array(tmp_path / "in.zarr", data=data, chunks=(2, 5, 6))
    spec = write_spec(tmp_path / "job.toml", tmp_path / "in.zarr", tmp_path / "out.zarr",
                      MEAN_SPEC)
    plan = hpcscale.plan(spec, site="local")
    assert any(line.startswith("site") for line in plan.lines())
    assert not (tmp_path / "out.zarr").exists()
    summary = hpcscale.submit(spec, site="local", quiet=True)
    got = xr.open_zarr(summary.output)
    np.testing.assert_allclose(next(iter(got.data_vars.values())).values,
                               data.mean(axis=0), rtol=1e-6)


def test_map_over_files_returns_the_summary_and_the_index(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(4):
        (notes / f"n{i}.json").write_text(json.dumps({"id": i, "text": "A b, a!" * i}))
    (notes / "n9.json").write_text("{not json")
    fn = Path(__file__).resolve().parents[3] / "docs" / "examples" / "clean_json.py"
    result = hpcscale.map(str(notes / "*.json"), f"{fn}:clean", tmp_path / "out",
                          site="local", quiet=True)
    assert (result.ok, result.failed) == (4, 1)
    index = xr.open_zarr(result.index)
    words = dict(zip([os.path.basename(str(p)) for p in index["file"].values],
                     index["words"].values, strict=True))
    assert words["n3.json"] == 9
    with pytest.raises(HpcscaleError, match="1 of 5 files failed"):
        result.check()
