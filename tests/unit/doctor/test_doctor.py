"""`hpcscale doctor`'s error handling, with fake SLURM commands on PATH (no testbed).

The fakes are /bin/sh scripts using only shell built-ins, and PATH holds
nothing but them, so a real SLURM on this machine is never reached.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import Cli, write_profile
from hpcscale import __version__, doctor
from hpcscale.config import profiles
from hpcscale.doctor import probe as doctor_probe

# A profile without `interface`: the doctor listens on this machine's default address.
PROFILE = '[slurm]\npartition = "debug"\nmemory = "1GiB"\nwalltime = "00:10:00"\n'
PARTITION = ("PartitionName=debug Nodes=c1 Default=YES MaxTime=01:00:00 State=UP "
             "MaxNodes=UNLIMITED")
NODE = "NodeName=c1 CPUTot=2 RealMemory=4000 State=IDLE Partitions=debug"

SCONTROL = f"""\
case "$1 $2" in
  "ping ") echo "Slurmctld(primary) at head is UP" ;;
  "show partition") echo "{PARTITION}" ;;
  "show node") echo "{NODE}" ;;
  "show hostnames") echo c1 ;;
  *) exit 1 ;;
esac
"""
SBATCH_OK = 'echo "$@" > "$LOG/sbatch.args"\necho 123\n'
# The fake job pends until scancel is called.
SQUEUE_PENDING = ('[ -e "$LOG/cancelled" ] || echo "123|hpcscale-doctor-x|PENDING|Resources||debug"'
                  "\n")
SCANCEL = 'echo "$@" >> "$LOG/scancel.args"\n: > "$LOG/cancelled"\n'


@pytest.fixture
def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, user_sites: Path):  # type: ignore[no-untyped-def]
    """Install fake commands: ``fake_slurm(sbatch=..., ...)``; returns the log directory."""
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    log.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("LOG", str(log))
    write_profile(user_sites, "site1", PROFILE)

    def install(**scripts: str | None) -> Path:
        defaults = {"sbatch": SBATCH_OK, "squeue": SQUEUE_PENDING, "scontrol": SCONTROL,
                    "scancel": SCANCEL}
        for name, body in {**defaults, **scripts}.items():
            if body is not None:
                path = bin_dir / name
                path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
                path.chmod(0o755)
        return log

    return install


def _checks(out: str) -> dict[str, dict[str, str]]:
    return {c["name"]: c for c in json.loads(out)["checks"]}


def test_sbatch_missing_from_path(cli: Cli, fake_slurm) -> None:
    fake_slurm(sbatch=None)
    r = cli("doctor", "--site", "site1")
    assert r.code == 1, r
    assert "FAIL  slurm commands       not on PATH: sbatch\n" in r.out
    assert "fix: run hpcscale on the cluster's login node, or put SLURM's commands on PATH" in r.out
    assert "skip  probe job            not submitted: SLURM's commands are missing" in r.out
    assert "slurm controller" not in r.out  # not asked without the commands
    assert "error: site site1: 1 check(s) failed (slurm commands)" in r.err


def test_controller_not_answering(cli: Cli, fake_slurm) -> None:
    fake_slurm(scontrol='echo "slurm_load_partitions: Unable to contact slurm controller '
               '(connect failure)" >&2\nexit 1\n')
    r = cli("--json", "doctor", "--site", "site1")
    assert r.code == 1, r
    checks = _checks(r.out)
    ctl = checks["slurm controller"]
    assert ctl["status"] == "FAIL"
    assert "Unable to contact slurm controller (connect failure)" in ctl["detail"]
    assert "SLURM_CONF" in ctl["fix"]
    assert checks["probe job"]["status"] == "skip"
    assert "partition" not in checks


def test_sbatch_refusal_is_reported_verbatim(cli: Cli, fake_slurm) -> None:
    fake_slurm(sbatch='echo "sbatch: error: Batch job submission failed: Invalid account '
               'or account/partition combination specified" >&2\nexit 1\n')
    r = cli("doctor", "--site", "site1")
    assert r.code == 1, r
    assert ("FAIL  probe job            sbatch refused it: sbatch: error: Batch job submission "
            "failed: Invalid account or account/partition combination specified") in r.out
    assert "ok    partition            debug exists and is UP" in r.out


def test_pending_probe_is_cancelled_with_slurms_reason(cli: Cli, fake_slurm) -> None:
    log = fake_slurm()
    r = cli("doctor", "--site", "site1", "--timeout", "1")
    assert r.code == 1, r
    assert "FAIL  probe job            job 123 still PENDING after 1 s (reason: Resources); " \
           "cancelled" in r.out
    assert "the partition is busy" in r.out
    assert "123" in (log / "scancel.args").read_text().split()
    args = (log / "sbatch.args").read_text()
    assert "--job-name=hpcscale-doctor-" in args
    assert "--partition=debug" in args
    assert "--time=00:02:00 --nodes=1 --ntasks=1 --cpus-per-task=1 --mem=256M" in args


def test_probe_is_cancelled_when_interrupted(fake_slurm, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_slurm()

    def interrupt(*_args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(doctor_probe, "_accept", interrupt)
    with pytest.raises(KeyboardInterrupt):
        doctor.diagnose("site1")
    assert "123" in (log / "scancel.args").read_text().split()


def test_unreachable_scheduler_port(cli: Cli, fake_slurm, monkeypatch: pytest.MonkeyPatch) -> None:
    log = fake_slurm(squeue='[ -e "$LOG/cancelled" ] || echo "123|x|RUNNING|None|c1|debug"\n')

    def report(self: doctor_probe.Probe) -> dict[str, object]:
        # what a probe that could not connect writes into its output file
        return {"token": self.token, "host": "c1", "python": "/sw/bin/python3",
                "hpcscale": __version__, "interfaces": {"eth0": ["10.1.0.7"]},
                "dirs": {"runs directory": [str(self.dir), True, True]},
                "connect": "[Errno 113] No route to host", "via": "file"}

    monkeypatch.setattr(doctor_probe.Probe, "from_file", report)
    r = cli("--json", "doctor", "--site", "site1")
    assert r.code == 1, r
    checks = _checks(r.out)
    assert checks["probe job"]["detail"] == "job 123 ran on c1 (started within 1 s)"
    assert checks["node python"]["status"] == "ok"
    port = checks["scheduler port"]
    assert port["status"] == "FAIL"
    assert re.fullmatch(r"c1 cannot connect to [0-9.]+:\d+: \[Errno 113\] No route to host",
                        port["detail"]), port
    assert "firewall" in port["fix"]
    assert "123" in (log / "scancel.args").read_text().split()


def test_probe_that_ends_without_a_report(cli: Cli, fake_slurm) -> None:
    fake_slurm(squeue=":\n")  # the job is gone at once, and wrote nothing
    r = cli("--json", "doctor", "--site", "site1")
    assert r.code == 1, r
    probe = _checks(r.out)["probe job"]
    assert probe["status"] == "FAIL"
    assert probe["detail"] == "job 123 ended without a report"
    assert "probe.err" in probe["fix"]


def test_account_and_qos_from_sacctmgr(cli: Cli, fake_slurm, user_sites: Path) -> None:
    log = fake_slurm(sacctmgr='echo "physics|normal,high|||"\necho "chem|normal|4|8|1:00:00"\n')
    write_profile(user_sites, "bio", PROFILE + 'account = "bio"\n')
    r = cli("doctor", "--site", "bio")
    assert r.code == 1, r
    assert "FAIL  account              'bio' is not one of your accounts (chem, physics)" in r.out
    assert f"fix: set account = one of: chem, physics in {user_sites / 'bio.toml'}" in r.out
    assert "skip  probe job            not submitted: account bio is not yours" in r.out
    assert not (log / "sbatch.args").exists()
    write_profile(user_sites, "chem", PROFILE + 'account = "chem"\nqos = "high"\n')
    r = cli("doctor", "--site", "chem", "--dry-run")
    assert r.code == 1, r
    assert "ok    account              chem is one of your accounts" in r.out
    assert "FAIL  qos                  'high' is not allowed for you (normal)" in r.out
    write_profile(user_sites, "phys", PROFILE + 'account = "physics"\nqos = "high"\n')
    assert cli("doctor", "--site", "phys", "--dry-run").code == 0


def test_dry_run_submits_nothing(cli: Cli, fake_slurm) -> None:
    log = fake_slurm()
    r = cli("doctor", "--site", "site1", "--dry-run")
    assert r.code == 0, r
    assert "skip  probe job            --dry-run: nothing submitted" in r.out
    assert not (log / "sbatch.args").exists()


def test_local_site_needs_no_slurm(cli: Cli, fake_slurm) -> None:
    fake_slurm(sbatch=None, squeue=None, scontrol=None, scancel=None)
    r = cli("doctor", "--site", "local")
    assert r.code == 0, r
    assert "skip  slurm                site local runs on this machine: SLURM checks skipped" \
        in r.out
    assert "site local: every check passed (1 skipped)" in r.out


def test_usage_errors_exit_2(cli: Cli, fake_slurm, user_sites: Path) -> None:
    fake_slurm()
    r = cli("doctor", "--site", "nosuch")
    assert r.code == 2, r
    assert "error: site 'nosuch' is not a known profile (known: " in r.err
    r = cli("doctor")  # SLURM (the fakes) is here: a site must be named
    assert r.code == 2, r
    assert "name a site with --site" in r.err


def test_broken_profile_is_a_failed_check(cli: Cli, fake_slurm, user_sites: Path) -> None:
    fake_slurm()
    write_profile(user_sites, "broken", '[slurm]\npartition = "debug"\ncores = 0\n')
    r = cli("doctor", "--site", "broken")
    assert r.code == 1, r
    assert "FAIL  profile              profile " in r.out
    assert "slurm.cores = 0" in r.out
    assert "skip  slurm                the profile does not load" in r.out


def test_unwritable_runs_directory(cli: Cli, fake_slurm, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake_slurm()
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HPCSCALE_RUNS_DIR", str(blocker))
    r = cli("doctor", "--site", "site1")
    assert r.code == 1, r
    assert f"FAIL  runs directory       {blocker} is not a directory" in r.out
    assert "fix: set HPCSCALE_RUNS_DIR" in r.out
    assert "not submitted: the runs directory is not writable" in r.out


def test_only_the_probe_with_the_token_is_heard() -> None:
    assert doctor_probe.parse('{"token": "abc", "host": "c1"}\n', "abc") == {
        "token": "abc", "host": "c1"}
    assert doctor_probe.parse('{"token": "xyz", "host": "c1"}\n', "abc") is None
    assert doctor_probe.parse("GET / HTTP/1.1\r\n", "abc") is None
    assert doctor_probe.parse("", "abc") is None


def test_the_probe_alone_says_how_it_ended(fake_slurm) -> None:  # type: ignore[no-untyped-def]
    log = fake_slurm()
    settings = profiles.load("site1").profile.slurm
    assert settings is not None
    said: list[str] = []
    probe = doctor_probe.Probe(settings, address=None, max_time=90, say=said.append,
                               start_timeout=1)
    out = probe.run()
    assert (out.ending, out.job_id, out.detail, out.report) == (
        doctor_probe.Ending.pending, "123", "Resources", None)
    assert (out.listened, out.listen_error) == ("", "")
    assert said == ["probe job 123 submitted; it may wait 1 s to start"]
    assert "--time=00:01:30" in (log / "sbatch.args").read_text()
    assert "123" in (log / "scancel.args").read_text().split()
    script = (out.directory / "probe.sh").read_text(encoding="utf-8")
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "/dev/tcp/" not in script  # nothing listened: it reports only into its output
    probe.discard()
    assert not out.directory.exists()


def test_a_failed_probe_keeps_its_directory(cli: Cli, fake_slurm) -> None:
    fake_slurm()
    r = cli("doctor", "--site", "site1", "--timeout", "1")
    assert r.code == 1, r
    kept = re.search(r"the probe's script and output are kept in (\S+)", r.err)
    assert kept, r.err
    assert (Path(kept.group(1)) / "probe.sh").is_file()


def test_the_doctor_imports_nothing_above_it() -> None:
    """The command chooses the site (run.choose_site); the doctor never imports run."""
    above = ("hpcscale.run", "hpcscale.run.compute", "hpcscale.cli")
    code = f"import sys, hpcscale.doctor; sys.exit([m for m in {above} if m in sys.modules] or 0)"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, f"importing hpcscale.doctor loads {r.stderr.strip()}"
