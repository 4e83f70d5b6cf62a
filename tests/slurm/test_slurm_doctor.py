"""`hpcscale doctor` against the live SLURM testbed: the probe job really runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import Cli, login_only_module, write_profile
from hpcscale import __version__

pytestmark = pytest.mark.slurm


def _gone(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%i %T"], capture_output=True,
                         text=True, check=False, env=dict(os.environ))
    return not out.stdout.strip()


def _json(cli: Cli, *args: str) -> tuple[int, dict[str, Any]]:
    r = cli("--json", "doctor", *args)
    assert r.code in (0, 1), r
    data = json.loads(r.out)
    return r.code, {c["name"]: c for c in data["checks"]} | {"probe": data["probe"]}


def _probe_job_id(detail: str) -> str:
    found = re.match(r"job (\d+) ", detail)
    assert found, detail
    return found.group(1)


def test_doctor_passes_on_the_testbed(testbed: Path, cli: Cli) -> None:
    code, checks = _json(cli, "--site", "testbed")
    assert code == 0, checks
    bad = {n: c for n, c in checks.items() if n != "probe" and c["status"] == "FAIL"}
    assert not bad
    for name in ("slurm commands", "slurm controller", "partition", "interface", "probe job",
                 "node python", "node interface", "node runs directory", "scheduler port"):
        assert checks[name]["status"] == "ok", checks[name]
    probe = checks["probe"]
    assert probe["hpcscale"] == __version__
    assert probe["host"] in {"c1", "c2", "c3"}
    assert probe["interfaces"]["eth0"][0].startswith("10.197.0.")
    assert checks["interface"]["detail"] == "hpcsbr0 has 10.197.0.1"
    port = checks["scheduler port"]["detail"]
    assert port.startswith(f"{probe['host']} connected to 10.197.0.1:")
    assert _gone(_probe_job_id(checks["probe job"]["detail"]))


def test_broken_interface(testbed: Path, cli: Cli, user_sites: Path) -> None:
    write_profile(user_sites, "badif", 'extends = "testbed"\n[slurm]\ninterface = "nope0"\n')
    r = cli("doctor", "--site", "badif")
    assert r.code == 1, r
    line = next(ln for ln in r.out.splitlines() if ln.startswith("FAIL  interface "))
    assert "'nope0' does not exist here (interfaces: " in line
    assert "hpcsbr0 10.197.0.1" in line
    assert "lo 127.0.0.1" in line
    fix = r.out.splitlines()[r.out.splitlines().index(line) + 1].strip()
    assert fix.startswith("fix: set interface = one of: ")
    assert "hpcsbr0" in fix
    assert fix.endswith(f"in {user_sites / 'badif.toml'}")
    assert "skip  scheduler port       nothing to connect to (see interface)" in r.out
    assert "error: site badif: 1 check(s) failed (interface)" in r.err
    job = re.search(r"ok    probe job            job (\d+) ran on c\d", r.out)
    assert job, r.out
    assert _gone(job.group(1))


def test_missing_partition_submits_nothing(testbed: Path, cli: Cli, user_sites: Path) -> None:
    write_profile(user_sites, "nopart", 'extends = "testbed"\n[slurm]\npartition = "nosuch"\n')
    r = cli("doctor", "--site", "nopart")
    assert r.code == 1, r
    assert "FAIL  partition            'nosuch' does not exist (partitions: debug, short)" in r.out
    assert f"fix: set partition = one of: debug, short in {user_sites / 'nopart.toml'}" in r.out
    assert "skip  probe job            not submitted: partition nosuch is missing" in r.out
    assert "probe job" not in r.err  # nothing was submitted
    assert not list(Path(os.environ["HPCSCALE_RUNS_DIR"]).glob("doctor-*"))


def test_worker_interface_missing_on_the_nodes(testbed: Path, cli: Cli, user_sites: Path) -> None:
    write_profile(user_sites, "badwi", 'extends = "testbed"\n[slurm]\nworker_interface = "nope1"\n')
    code, checks = _json(cli, "--site", "badwi")
    assert code == 1
    node = checks["node interface"]
    assert node["status"] == "FAIL"
    assert re.fullmatch(r"worker_interface 'nope1' does not exist on c\d "
                        r"\(interfaces there: eth0 10\.197\.0\.\d+, lo 127\.0\.0\.1\)",
                        node["detail"]), node
    # the loopback is listed, never suggested
    assert node["fix"] == f"set worker_interface = one of: eth0 in {user_sites / 'badwi.toml'}"
    # everything else about the probe is fine
    assert checks["node python"]["status"] == "ok"
    assert checks["scheduler port"]["status"] == "ok"
    assert _gone(_probe_job_id(checks["probe job"]["detail"]))


def test_doctor_fn_imports_a_users_module_on_a_compute_node(
    testbed: Path, cli: Cli, tmp_path: Path, user_sites: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--fn: a module that imports here but not with the workers' environment (the
    profile's prologue resets PYTHONPATH, as a login node's often differs) fails the
    'node function' check; one the nodes have (scipy) passes."""
    site = login_only_module(tmp_path / "login-only", "labmod_doc",
                             "def f(path, out_dir):\n    return None\n", user_sites, monkeypatch)
    r = cli("--json", "doctor", "--site", site, "--fn", "labmod_doc:f",
            "--fn", "scipy.ndimage:uniform_filter")
    assert r.code == 1, r
    checks = json.loads(r.out)["checks"]
    node = [c for c in checks if c["name"] == "node function"]
    assert [c["status"] for c in node] == ["FAIL", "ok"], node
    assert "module 'labmod_doc' does not import with" in node[0]["detail"]
    assert "ModuleNotFoundError: No module named 'labmod_doc'" in node[0]["detail"]
    assert "module 'scipy.ndimage' imports with" in node[1]["detail"]
    local = [c for c in checks if c["name"] == "function"]
    assert [c["status"] for c in local] == ["ok", "ok"], local
