"""What a run records about the files it trusted: every profile and dask config file
it loaded, and whether the user overrode the writable-by-others refusal."""

from __future__ import annotations

import json
from pathlib import Path

import dask.config
import numpy as np
import pytest
import zarr

from helpers import Cli, write_profile


def test_run_directory_lists_every_config_file_and_the_trust_override(
    cli: Cli, user_sites: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dask_dir = tmp_path / "dask-config"
    dask_dir.mkdir()
    (dask_dir / "lab.yaml").write_text("distributed:\n  admin:\n    tick:\n      limit: 5s\n")
    monkeypatch.setattr(dask.config, "paths", [*dask.config.paths, str(dask_dir)])
    base = write_profile(user_sites, "labbase", 'kind = "local"\n[local]\nworkers = 1\n')
    lab = write_profile(user_sites, "lab", 'extends = "labbase"\n', mode=0o664)
    inp = tmp_path / "in.zarr"
    zarr.create_array(inp, shape=(4, 4), chunks=(2, 4), dtype="f4")[...] = np.ones((4, 4))
    spec = tmp_path / "job.toml"
    spec.write_text(f'[input]\npath = "{inp}"\n[[steps]]\nreduce = "sum"\n'
                    f'[output]\npath = "{tmp_path / "o.zarr"}"\n')

    refused = cli("submit", str(spec), "--site", "lab")
    assert refused.code == 2
    assert "writable by" in refused.err
    assert "--trust-profiles" in refused.err
    r = cli("--json", "--trust-profiles", "submit", str(spec), "--site", "lab")
    assert r.code == 0, r
    run = Path(json.loads(r.out)["run_dir"])
    record = json.loads((run / "config-files.json").read_text())
    assert set(record["profiles"]) == {str(lab), str(base)}
    assert str(dask_dir / "lab.yaml") in record["dask"]
    assert record["trusted_profiles"] is True
    assert oct(run.stat().st_mode & 0o777) == "0o700"
