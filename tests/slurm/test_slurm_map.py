"""``map`` steps on the real SLURM testbed: a user's function in a pipeline on three
jobs, and a module the workers cannot import, refused before anything is computed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from scipy import ndimage

from helpers import Cli, login_only_module

pytestmark = pytest.mark.slurm

# A file function beside the job spec (it travels to the workers by value), with a
# halo on every dim, then a built-in reduction: one graph.
SPEC = """
[input]
path = "{inp}"
[[steps]]
map = "fns.py:box"
kwargs = {{ size = 3 }}
depth = 1
[[steps]]
reduce = "max"
axis = ["z"]
[output]
path = "{out}"
"""
FNS = ("from scipy import ndimage\n\n\n"
       "def box(a, size=3):\n    return ndimage.uniform_filter(a, size=size, mode='reflect')\n")


def _input(tmp_path: Path) -> tuple[Path, np.ndarray]:
    data = np.random.default_rng(5).integers(0, 1000, (12, 40, 30)).astype("int32")
    path = tmp_path / "in.zarr"
    z = zarr.create_array(path, shape=data.shape, chunks=(2, 20, 15), dtype="int32",
                          dimension_names=("z", "y", "x"))
    z[...] = data
    return path, data


def test_a_map_step_then_a_reduction_on_three_jobs_equals_the_reference(
    testbed: Path, cli: Cli, tmp_path: Path,
) -> None:
    inp, data = _input(tmp_path)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "fns.py").write_text(FNS)
    out = tmp_path / "max.zarr"
    spec = jobs / "job.toml"
    spec.write_text(SPEC.format(inp=inp, out=out))
    r = cli("--json", "submit", str(spec), "--site", "testbed", "--jobs", "3")
    assert r.code == 0, r
    summary = json.loads(r.out)
    assert len(summary["jobs"]) == 3
    assert summary["workers"] == 3
    want = ndimage.uniform_filter(data, size=3, mode="reflect").max(axis=0)
    with xr.open_zarr(out) as ds:
        got = ds[next(iter(ds.data_vars))].values
        assert len(ds.attrs["provenance"]["steps"][0]["digest"]) == 64
    np.testing.assert_array_equal(got, want)


def test_a_module_the_workers_cannot_import_is_refused_before_any_work(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The module imports here (a folder on this process's path and PYTHONPATH) but the
    worker jobs' prologue resets PYTHONPATH, as a login node's environment often differs
    from the compute nodes': one line naming the module, nothing written."""
    site = login_only_module(tmp_path / "login-only", "labmod_xyz",
                             "def double(a):\n    return a * 2\n", user_sites, monkeypatch)
    inp, _ = _input(tmp_path)
    out = tmp_path / "out.zarr"
    spec = tmp_path / "job.toml"
    spec.write_text(SPEC.replace("fns.py:box", "labmod_xyz:double")
                    .replace("kwargs = {{ size = 3 }}\n", "").format(inp=inp, out=out))
    r = cli("submit", str(spec), "--site", site, "--jobs", "1")
    assert r.code == 1, r
    assert "Traceback" not in r.out + r.err, r
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.err
    line = errors[0]
    for word in ("step 1 (labmod_xyz:double)", "module 'labmod_xyz' does not import on the "
                 "workers", "ModuleNotFoundError", "python ", "nothing was computed"):
        assert word in line, (word, line)
    assert not out.exists()
