"""``hpcscale map-blocks`` and ``map`` steps in job specs, run on this machine (--site
local): results equal to the function on the whole array, a changed function is not
resumed, a bad result is one line, a core plane too large for a worker is refused."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from scipy import ndimage
from skimage.feature import canny

from helpers import Cli, write_profile
from hpcscale import slurm
from hpcscale.io.output import MARKER_KEY, is_complete, read_marker

STACK = (np.random.default_rng(11).random((4, 24, 20)) * 100).astype("float32")

# A file function, relative to the job spec's folder; then a reduction in the same graph.
SPEC = """
[input]
path = "{inp}"
[[steps]]
map = "fns/mine.py:smooth"
kwargs = {{ size = 3 }}
depth = {{ z = 1, y = 1, x = 1 }}
[[steps]]
reduce = "max"
axis = ["z"]
[output]
path = "{out}"
"""
SMOOTH = ("import numpy as np\nfrom scipy import ndimage\n\n"
          "def smooth(a, size=3):\n    return ndimage.maximum_filter(a, size=size){extra}\n")


@pytest.fixture(autouse=True)
def _no_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slurm, "available", lambda: False)


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    path = tmp_path / "in.zarr"
    z = zarr.create_array(path, shape=STACK.shape, chunks=(1, 10, 8), dtype="float32",
                          dimension_names=("z", "y", "x"))
    z[...] = STACK
    return path


def _result(path: Path) -> np.ndarray:
    with xr.open_zarr(path) as ds:
        return np.asarray(next(iter(ds.data_vars.values())).values)


def _hashes(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                p = Path(dirpath) / name
                found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _one_error(r: Any) -> str:
    assert "Traceback" not in r.out + r.err, r
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.err
    assert r.err.strip().splitlines()[-1] == errors[0]
    return errors[0]


def test_map_blocks_canny_per_plane_equals_canny_on_each_plane(
    cli: Cli, stack: Path, tmp_path: Path,
) -> None:
    out = tmp_path / "edges.zarr"
    r = cli("map-blocks", str(stack), str(out), "--fn", "skimage.feature:canny",
            "--kwarg", "sigma=2", "--core", "y", "--core", "x", "--dtype", "bool",
            "--site", "local", "--jobs", "1")
    assert r.code == 0, r
    got = _result(out)
    want = np.stack([canny(p, sigma=2) for p in STACK])
    assert got.dtype == np.bool_
    assert want.any()
    np.testing.assert_array_equal(got, want)
    with xr.open_zarr(out) as ds:
        step = ds.attrs["provenance"]["steps"][0]
    assert step["map"] == "skimage.feature:canny"
    assert step["kwargs"] == {"sigma": 2}
    assert len(step["digest"]) == 64


def test_a_job_spec_with_a_file_function_then_a_reduction(
    cli: Cli, stack: Path, tmp_path: Path,
) -> None:
    """The function's file lies beside the job spec (not in the current directory) and
    reaches the local workers by value."""
    jobs = tmp_path / "jobs"
    (jobs / "fns").mkdir(parents=True)
    (jobs / "fns" / "mine.py").write_text(SMOOTH.format(extra=""))
    out = tmp_path / "max.zarr"
    spec = jobs / "job.toml"
    spec.write_text(SPEC.format(inp=stack, out=out))
    r = cli("submit", str(spec), "--site", "local", "--jobs", "1")
    assert r.code == 0, r
    want = ndimage.maximum_filter(STACK, size=3).max(axis=0)
    np.testing.assert_array_equal(_result(out), want)


def test_a_changed_function_is_not_resumed(
    cli: Cli, stack: Path, tmp_path: Path,
) -> None:
    jobs = tmp_path / "jobs"
    (jobs / "fns").mkdir(parents=True)
    fns = jobs / "fns" / "mine.py"
    fns.write_text(SMOOTH.format(extra=""))
    out = tmp_path / "max.zarr"
    spec = jobs / "job.toml"
    spec.write_text(SPEC.format(inp=stack, out=out))
    assert cli("submit", str(spec), "--site", "local", "--jobs", "1").code == 0
    # as if the run had been interrupted
    group = zarr.open_group(out, mode="r+", use_consolidated=False)
    group.attrs[MARKER_KEY] = dict(group.attrs[MARKER_KEY]) | {"complete": False}
    marker = read_marker(out)
    assert marker is not None
    assert list(marker["functions"]) == [f"{fns.resolve()}:smooth"]
    # the same function: the store resumes
    r = cli("plan", str(spec), "--site", "local")
    assert r.code == 0, r
    assert "resume" in r.out + r.err
    fns.write_text(SMOOTH.format(extra=" + 1"))
    before = _hashes(tmp_path)
    for command in ("plan", "submit"):
        r = cli(command, str(spec), "--site", "local", "--jobs", "1")
        assert r.code == 2, r
        line = _one_error(r)
        for word in (str(out), "another version of the function", "mine.py:smooth",
                     "--overwrite"):
            assert word in line, (word, line)
    assert _hashes(tmp_path) == before, "a refused run changed files"
    r = cli("submit", str(spec), "--site", "local", "--jobs", "1", "--overwrite")
    assert r.code == 0, r
    np.testing.assert_array_equal(_result(out), ndimage.maximum_filter(STACK, 3).max(0) + 1)


def test_a_bad_result_at_run_time_is_one_line_and_exit_1(
    cli: Cli, stack: Path, tmp_path: Path,
) -> None:
    (tmp_path / "bad.py").write_text("def crop(a):\n    return a[:, 1:]\n")
    out = tmp_path / "out.zarr"
    before = _hashes(stack)
    r = cli("map-blocks", str(stack), str(out), "--fn", str(tmp_path / "bad.py") + ":crop",
            "--site", "local", "--jobs", "1")
    assert r.code == 1, r
    line = _one_error(r)
    for word in ("step 1", "bad.py:crop", "at block (", "crop returned shape", "expected",
                 "--overwrite"):
        assert word in line, (word, line)
    assert not is_complete(out)
    assert _hashes(stack) == before


def test_a_core_plane_larger_than_a_worker_is_refused_by_the_plan(
    cli: Cli, user_sites: Path, tmp_path: Path,
) -> None:
    """Blocks of 8 x 8 fit a 1 MB worker; whole 512 x 512 planes (2 MiB as float64) do not."""
    write_profile(user_sites, "tiny", 'kind = "local"\n[local]\nworkers = 1\nthreads = 1\n'
                  'memory = "1MB"\n')
    path = tmp_path / "big.zarr"
    zarr.create_array(path, shape=(2, 512, 512), chunks=(1, 8, 8), dtype="float32",
                      dimension_names=("z", "y", "x"))
    out = str(tmp_path / "o.zarr")
    r = cli("map-blocks", str(path), out, "--fn", "numpy:negative", "--site", "tiny",
            "--dry-run")
    assert r.code == 0, r
    r = cli("map-blocks", str(path), out, "--fn", "numpy:negative", "--core", "y", "--core",
            "x", "--site", "tiny", "--dry-run")
    assert r.code == 2, r
    line = _one_error(r)
    assert "a chunk needs about" in line, line
    assert "worker thread has" in line, line


def test_kwargs_are_read_as_toml_values(cli: Cli, stack: Path, tmp_path: Path) -> None:
    r = cli("map-blocks", str(stack), str(tmp_path / "o.zarr"), "--fn", "scipy.ndimage:zoom",
            "-k", "zoom=1", "-k", "order=0", "-k", "mode=nearest", "-k", "prefilter=false",
            "-k", 'output="float32"', "--print-spec")
    assert r.code == 0, r
    import tomllib

    table = tomllib.loads(r.out)["steps"][0]
    assert table["kwargs"] == {"zoom": 1, "order": 0, "mode": "nearest", "prefilter": False,
                               "output": "float32"}
