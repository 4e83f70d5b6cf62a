"""A full disk under the output: one clear line, exit 1, the store left marked
incomplete; and the plan warns beforehand. (On the SLURM testbed too: see
test_slurm_faults.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr

from helpers import Cli
from hpcscale.io.output import is_complete, read_marker


def _job(tmp_path: Path, out: Path) -> Path:
    # 1 MiB of noise, which no codec shrinks below the 256 KiB disk
    data = np.random.default_rng(3).random((16, 128, 128)).astype("float32")
    inp = tmp_path / "in.zarr"
    if not inp.exists():
        zarr.create_array(inp, shape=data.shape, chunks=(2, 128, 128), dtype="float32")[...] = data
    spec = tmp_path / f"{out.parent.name}.toml"
    spec.write_text(f"""
[input]
path = "{inp}"
[[steps]]
filter = "gaussian"
sigma = 1
[output]
path = "{out}"
""")
    return spec


def test_plan_warns_when_the_output_may_not_fit(
    cli: Cli, tmp_path: Path, small_disk: Path
) -> None:
    r = cli("plan", str(_job(tmp_path, small_disk / "out.zarr")), "--site", "local")
    assert r.code == 0, r
    assert "free on the output's file system" in r.out
    assert "but the result is up to 1MiB uncompressed" in r.out
    roomy = cli("plan", str(_job(tmp_path, tmp_path / "out.zarr")), "--site", "local")
    assert "free on the output's file system" not in roomy.out


def test_a_full_disk_is_one_line_exit_1_and_the_store_stays_incomplete(
    cli: Cli, tmp_path: Path, small_disk: Path
) -> None:
    out = small_disk / "out.zarr"
    r = cli("submit", str(_job(tmp_path, out)), "--site", "local")
    assert r.code == 1, r
    (line,) = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert r.err.strip().endswith(line)  # the last word, one line
    assert f"output {out}: disk full" in line
    assert "free, the result needs up to 1MiB uncompressed" in line
    assert "Traceback" not in r.err
    marker = read_marker(out)
    assert marker is not None  # the metadata fit...
    assert not is_complete(out)  # ...but the store is not called complete
    assert not list(out.rglob("*.partial"))


@pytest.mark.parametrize("what", ["plan", "submit"])
def test_the_disk_check_names_the_path(
    cli: Cli, tmp_path: Path, small_disk: Path, what: str
) -> None:
    spec = _job(tmp_path, small_disk / "out.zarr")
    r = cli(what, str(spec), "--site", "local")
    assert str(small_disk) in r.out + r.err
