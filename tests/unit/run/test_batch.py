"""Batch mode without SLURM: the scripts `hpcscale sbatch` writes, and what it refuses.

Golden files hold the scripts for the built-in SLURM profiles, with the python
path, run id and temporary paths replaced by placeholders. On an intended
change, accept the new scripts with:
    HPCSCALE_UPDATE_GOLDEN=1 pytest tests/unit/run/test_batch.py
and review the diff of tests/golden/batch-*.sbatch before committing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from helpers import Cli, assert_golden, write_profile
from hpcscale import run
from hpcscale.config import profiles
from hpcscale.errors import InputError
from hpcscale.run import batch
from hpcscale.rundir import Progress, RunDir, list_runs

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
RUNS = lambda: Path(os.environ["HPCSCALE_RUNS_DIR"])  # noqa: E731


@pytest.fixture(autouse=True)
def _no_live_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    """This tier runs without SLURM, even on a machine where its commands are installed."""
    from hpcscale import slurm

    monkeypatch.setattr(slurm, "available", lambda: False)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    inp = tmp_path / "in.zarr"
    arr = zarr.create_array(inp, shape=(8, 6, 5), chunks=(4, 6, 5), dtype="float32")
    arr[...] = np.arange(240, dtype="float32").reshape(8, 6, 5)
    path = tmp_path / "job.toml"
    path.write_text(f'[input]\npath = "{inp}"\n[[steps]]\nreduce = "mean"\naxis = [0]\n'
                    f'[output]\npath = "{tmp_path / "out.zarr"}"\n')
    return path


def _placeholders(text: str, run_id: str, tmp_path: Path) -> str:
    return (text.replace(str(RUNS()), "<runs>").replace(str(tmp_path), "<tmp>")
            .replace(run_id, "<run-id>").replace(sys.executable, "<python>"))


def _only_run() -> RunDir:
    (rd,) = list_runs()
    return rd


@pytest.mark.parametrize("name", ["testbed", "example-slurm"])
def test_builtin_profile_batch_script_matches_golden(
    name: str, spec: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    r = cli("--json", "sbatch", str(spec), "--site", name, "--jobs", "2")
    assert r.code == 0, r
    data = json.loads(r.out)
    got = _placeholders(data["text"], data["run_id"], tmp_path)
    assert_golden(GOLDEN / f"batch-{name}.sbatch", got, f"batch script for {name}")


@pytest.mark.parametrize("name", ["testbed", "example-slurm"])
def test_batch_script_passes_bash_n_and_shellcheck(
    name: str, spec: Path, tmp_path: Path
) -> None:
    profile = profiles.load(name).profile
    script = tmp_path / "run.sbatch"
    script.write_text(batch.render(batch.script_for(
        profile, spec, "20260101-120000-abcdef", jobs=2, mail_type=("END", "FAIL"),
        mail_user="me@example.org", summary_file=tmp_path / "s.json")))
    subprocess.run(["bash", "-n", str(script)], check=True)
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("shellcheck is not installed (scripts/testbed install installs it)")
        pytest.skip("shellcheck is not installed")
    check = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stdout


def test_header_comes_first_and_says_everything(spec: Path, user_sites: Path) -> None:
    write_profile(user_sites, "full", """
[slurm]
partition = "gpu,cpu"
account = "lab42"
qos = "high"
walltime = "1-02:00:00"
cores = 4
processes = 2
memory = "28GB"
interface = "ib0"
worker_interface = "ib1"
extra_directives = ["--constraint=skylake"]
prologue = ["module load python/3.11"]
python = "/opt/envs/lab/bin/python"
""")
    b = batch.script_for(profiles.load("full").profile, spec, "20260101-120000-abcdef",
                         runs=Path("/home/me/runs"), workdir=Path("/home/me/project"),
                         mail_type=("END", "FAIL"), mail_user="me@example.org",
                         summary_file=Path("/home/me/sum mary.json"), trust_profiles=True)
    lines = batch.render(b).splitlines()
    for expected in ["#SBATCH --job-name=hpcscale-20260101-120000-abcdef",
                     "#SBATCH --partition=gpu,cpu", "#SBATCH --account=lab42",
                     "#SBATCH --qos=high", "#SBATCH --time=1-02:00:00",
                     "#SBATCH --cpus-per-task=4", "#SBATCH --mem=26702M",
                     "#SBATCH --chdir=/home/me/project",
                     "#SBATCH --output=/home/me/runs/20260101-120000-abcdef/logs/driver-%j.out",
                     "#SBATCH --error=/home/me/runs/20260101-120000-abcdef/logs/driver-%j.err",
                     "#SBATCH --mail-type=END,FAIL", "#SBATCH --mail-user=me@example.org",
                     "#SBATCH --constraint=skylake", "    module load python/3.11",
                     "export HPCSCALE_RUNS_DIR=/home/me/runs"]:
        assert expected in lines, expected
    assert lines[-1] == (
        f"exec /opt/envs/lab/bin/python -m hpcscale --trust-profiles driver {spec} "
        "--site full --run-id 20260101-120000-abcdef --summary-file '/home/me/sum mary.json'")
    assert any("interface (ib1)" in ln for ln in lines)  # the scheduler's, inside the job
    first_cmd = next(i for i, ln in enumerate(lines[1:], 1) if ln and not ln.startswith("#"))
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_cmd:])


def test_printed_script_makes_the_run_directory(
    spec: Path, cli: Cli
) -> None:
    r = cli("sbatch", str(spec), "--site", "testbed")
    assert r.code == 0, r
    rd = _only_run()
    assert r.out == (rd.path / "batch.sbatch").read_text()
    assert (rd.path / "logs").is_dir()  # SLURM opens the driver log there before the script
    assert rd.status().state == "written"
    assert f"hpcscale-{rd.run_id}" in r.out
    assert rd.run_id in r.err  # stderr names the run, stdout stays a clean script


def test_output_file_and_state(spec: Path, tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "run.sbatch"
    r = cli("sbatch", str(spec), "--site", "testbed", "-o", str(out), "--mail-type", "end,fail",
            "--summary-file", "sum.json")
    assert r.code == 0, r
    assert f"sbatch {out}" in r.out
    rd = _only_run()
    text = out.read_text()
    assert text == (rd.path / "batch.sbatch").read_text()
    assert "#SBATCH --mail-type=END,FAIL\n" in text
    assert f"--summary-file {Path.cwd() / 'sum.json'}" in text
    state = rd.status()
    assert state.state == "written"
    assert state.script == str(out)
    assert (rd.path / "jobspec.toml").exists()
    assert (rd.path / "plan.txt").exists()


def test_dry_run_creates_nothing(spec: Path, cli: Cli) -> None:
    r = cli("sbatch", str(spec), "--site", "testbed", "--submit", "--dry-run")
    assert r.code == 0, r
    assert r.out.startswith("#!/usr/bin/env bash\n#SBATCH --job-name=hpcscale-")
    assert list_runs() == []


# (label, extra argv, message fragment); every one exits 2 with one line and makes no run
BAD = [
    ("unknown mail type", ["--mail-type", "END,SOMETIMES"], "'SOMETIMES': not a SLURM mail"),
    ("newline in mail type", ["--mail-type", "END\n#SBATCH --x"], "not a SLURM mail type"),
    ("empty mail type", ["--mail-type", ""], "not a SLURM mail type"),
    ("mail user with space", ["--mail-type", "END", "--mail-user", "a b@c"], "--mail-user"),
    ("mail user newline", ["--mail-type", "END", "--mail-user", "a@b\n#SBATCH --x"],
     "--mail-user"),
    ("mail user without type", ["--mail-user", "me@example.org"], "needs --mail-type"),
    ("jobs zero", ["--jobs", "0"], "--jobs '0'"),
    ("local site", ["--site", "local"], "local profile"),
    ("unknown site", ["--site", "nope"], "not a known profile"),
    ("output exists", ["-o", "{spec}"], "exists"),
    ("output dir missing", ["-o", "{tmp}/no/run.sbatch"], "does not exist"),
    ("newline in summary file", ["--summary-file", "a\n#SBATCH --x"], "newline"),
]


@pytest.mark.parametrize(("label", "extra", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_bad_options_one_line_exit_2_nothing_made(
    label: str, extra: list[str], fragment: str, spec: Path, tmp_path: Path, cli: Cli
) -> None:
    argv = ["sbatch", str(spec), "--site", "testbed"]
    argv += [a.format(spec=spec, tmp=tmp_path) for a in extra]
    r = cli(*argv, "--submit")
    assert r.code == 2, r
    assert fragment in r.err, r
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert "Traceback" not in r.err
    assert list_runs() == []


def test_runs_dir_with_spaces_is_refused(
    spec: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HPCSCALE_RUNS_DIR", str(tmp_path / "my runs"))
    r = cli("sbatch", str(spec), "--site", "testbed")
    assert r.code == 2, r
    assert "#SBATCH line cannot carry" in r.err
    assert not (tmp_path / "my runs").exists() or not any((tmp_path / "my runs").iterdir())


def test_driver_refuses_outside_an_allocation(
    spec: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    r = cli("driver", str(spec), "--site", "testbed", "--run-id", "20260101-120000-abcdef")
    assert r.code == 2, r
    assert "inside a SLURM batch job" in r.err
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    r = cli("driver", str(spec), "--site", "testbed", "--run-id", "../../etc")
    assert r.code == 2, r
    assert "--run-id '../../etc'" in r.err
    assert list_runs() == []


def test_driver_adopts_the_run_and_reports_failure(
    spec: Path, tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("sbatch", str(spec), "--site", "testbed", "-o", str(tmp_path / "r.sbatch")).code == 0
    rd = _only_run()
    shutil.rmtree(tmp_path / "in.zarr")  # the input went away before the job started
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    summary = tmp_path / "summary.json"
    with pytest.raises(InputError):
        batch.drive(spec, "testbed", 2, rd.run_id, summary_file=summary)
    state = rd.status()
    assert state.state == "failed"
    assert state.error is not None
    assert "in.zarr" in state.error
    assert state.exit_code == 2
    data = json.loads(summary.read_text())
    assert data["run_id"] == rd.run_id
    assert data["exit_code"] == 2
    assert data["state"] == "failed"
    assert data["batch_job"] == "4242"
    assert data["seconds"] >= 0


def test_rundir_adopts_by_id_and_keeps_state(spec: Path) -> None:
    from hpcscale.config import jobspec

    prep = run.prepare(jobspec.load(spec), "testbed", 1)
    first = RunDir.create(prep.spec, prep.profile, prep.plan, run_id="20260101-120000-abcdef")
    first.update(state="pending", batch_job="7")
    again = RunDir.create(prep.spec, prep.profile, prep.plan, run_id="20260101-120000-abcdef")
    assert again == first
    assert again.status().batch_job == "7"
    assert again.status().state == "created"
    with pytest.raises(ValueError, match="not of the form"):
        RunDir.create(prep.spec, prep.profile, prep.plan, run_id="../x")


def test_scheduler_listens_on_the_worker_interface_inside_an_allocation() -> None:
    testbed = profiles.load("testbed").profile
    assert testbed.slurm is not None
    assert testbed.slurm.interface == "hpcsbr0"  # the login node's bridge
    inside = batch.in_allocation(testbed)
    assert inside.slurm is not None
    assert inside.slurm.interface == "eth0"  # the compute nodes' own name
    example = profiles.load("example-slurm").profile  # no worker_interface: unchanged
    assert batch.in_allocation(example) == example


def test_ssh_forward_line() -> None:
    node = os.uname().nodename
    link = "http://127.0.0.1:40123/status"
    assert run.ssh_forward(link, {}) == f"ssh -N -L 8787:127.0.0.1:40123 {node}"
    inside = {"SLURM_JOB_ID": "9", "SLURM_SUBMIT_HOST": "login1", "SLURMD_NODENAME": "c7"}
    assert run.ssh_forward(link, inside) == "ssh -N -L 8787:127.0.0.1:40123 -J login1 c7"
    assert run.ssh_forward("", {}) == ""
    # the link names the scheduler host; the dashboard itself listens on loopback
    assert run.ssh_forward("http://10.197.0.11:40123/status", {}).startswith(
        "ssh -N -L 8787:127.0.0.1:40123 ")


def test_log_reporter_writes_progress(spec: Path) -> None:
    from hpcscale.config import jobspec

    prep = run.prepare(jobspec.load(spec), "testbed", 1)
    rd = RunDir.create(prep.spec, prep.profile, prep.plan)
    out = io.StringIO()
    rep = batch.LogReporter(rd, out, every=0.0)
    rep.status("jobs: 1 pending")
    rep.status("jobs: 1 pending")
    rep.progress(3, 10)
    rep.progress(10, 10)
    assert out.getvalue().count("jobs: 1 pending") == 1
    assert "computing: 10/10 tasks" in out.getvalue()
    assert rd.status().progress == Progress(done=10, total=10)


def test_logs_prints_driver_log_first(
    spec: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("sbatch", str(spec), "--site", "testbed").code == 0
    rd = _only_run()
    (rd.path / "logs" / "hpcscale-x-12.err").write_text("worker says hi\n")
    (rd.path / "logs" / "driver-11.out").write_text("first line\nsecond\ndriver done\n")
    r = cli("logs", rd.run_id[:17])
    assert r.code == 0, r
    assert r.out.index("driver done") < r.out.index("worker says hi")
    assert "==> " in r.out
    r = cli("logs", rd.run_id, "--tail", "1")
    assert "driver done" in r.out
    assert "first line" not in r.out


def _fake_queue(monkeypatch: pytest.MonkeyPatch, jobs: dict[str, str]) -> list[list[str]]:
    """squeue answers with ``jobs`` (id -> state); scancel calls are recorded."""
    from hpcscale import slurm
    from hpcscale.run import history as runs

    def queue(job_ids=(), *, name=None):  # type: ignore[no-untyped-def]
        wanted = set(job_ids)
        return {j: slurm.JobState(j, name or "", s, "None", "c1", "debug")
                for j, s in jobs.items() if not wanted or j in wanted}

    cancelled: list[list[str]] = []
    monkeypatch.setattr(slurm, "available", lambda: True)
    monkeypatch.setattr(slurm, "queue", queue)
    monkeypatch.setattr(slurm, "cancel", lambda ids: ids and cancelled.append(list(ids)))
    monkeypatch.setattr(runs.time, "sleep", lambda s: jobs.clear())
    return cancelled


def test_status_of_batch_runs(
    spec: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpcscale.run import history as runs

    assert cli("sbatch", str(spec), "--site", "testbed").code == 0
    rd = _only_run()
    jobs = {"41": "PENDING"}
    _fake_queue(monkeypatch, jobs)
    assert runs.status(rd.run_id)["state"] == "pending"  # submitted by hand, queued
    rd.update(state="running", batch_job="41", progress={"done": 3, "total": 12})
    jobs.update({"41": "RUNNING", "42": "RUNNING"})
    info = runs.status(rd.run_id)
    assert info["jobs"] == {"41": "RUNNING (batch driver)", "42": "RUNNING"}
    assert info["progress"] == "3/12 tasks"
    jobs.clear()  # the batch job is gone, the driver recorded no end
    info = runs.status(rd.run_id)
    assert info["state"] == "lost"
    assert "batch job 41 left the queue" in info["error"]


def test_cancel_and_cleanup_of_batch_runs(
    spec: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpcscale.run import history as runs

    assert cli("sbatch", str(spec), "--site", "testbed").code == 0
    rd = _only_run()
    rd.update(state="pending", batch_job="41", pid=1, host="elsewhere")
    jobs = {"41": "PENDING"}
    cancelled = _fake_queue(monkeypatch, jobs)
    assert runs.cleanup() == []  # its driver is the queued batch job: alive
    assert cancelled == []
    jobs.update({"41": "RUNNING", "42": "RUNNING"})
    assert runs.cancel(rd.run_id) == ["41", "42"]  # the batch driver job too
    assert cancelled == [["41", "42"]]
    assert rd.status().state == "cancelled"
    rd.update(state="running")
    jobs.update({"43": "RUNNING"})  # a worker left behind after the batch job died
    assert runs.cleanup() == ["43"]
    assert rd.status().state == "orphaned"


def test_logs_reads_the_workers_logs_where_the_profile_put_them(
    spec: Path, cli: Cli, tmp_path: Path
) -> None:
    """A profile's log_directory holds the worker jobs' files of every run: `logs`
    shows this run's from there too, and no other run's (issue 16, defect 6's place)."""
    assert cli("sbatch", str(spec), "--site", "testbed").code == 0
    rd = _only_run()
    site_logs = tmp_path / "site-logs"
    site_logs.mkdir()
    rd.update(log_directory=str(site_logs))
    (site_logs / f"{rd.job_name}-41.err").write_text("ValueError: 'tbr0' is not valid\n")
    (site_logs / "hpcscale-20250101-000000-other-40.err").write_text("another run's\n")
    r = cli("logs", rd.run_id)
    assert r.code == 0, r
    assert "ValueError: 'tbr0' is not valid" in r.out
    assert "another run's" not in r.out
