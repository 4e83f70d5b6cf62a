"""`site check` and `site init` against the live SLURM testbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import Cli, write_profile
from hpcscale.config import profiles

pytestmark = pytest.mark.slurm


def test_site_check_good_profile(testbed: Path, cli: Cli) -> None:
    r = cli("site", "check", "testbed")
    assert r.code == 0, r
    assert "ok    partition debug exists, state UP" in r.out
    assert "fit on 3 of 3 node(s) of debug" in r.out
    assert "FAIL" not in r.out


def test_site_check_reports_every_problem(testbed: Path, cli: Cli, user_sites: Path) -> None:
    write_profile(user_sites, "nopart", '[slurm]\npartition = "nosuch"\n')
    r = cli("site", "check", "nopart")
    assert r.code == 2, r
    assert "FAIL  partition 'nosuch' does not exist (partitions: debug, short)" in r.out
    assert "error: site nopart: 1 check(s) failed" in r.err

    write_profile(user_sites, "big", '[slurm]\npartition = "debug"\nmemory = "64GiB"\n'
                  'walltime = "02:00:00"\n')
    r = cli("site", "check", "big")
    assert r.code == 2, r
    assert "FAIL  cores=1, memory=64GiB fit on no node of debug (largest: " in r.out
    assert "FAIL  walltime 02:00:00 is over debug's MaxTime 01:00:00" in r.out
    assert "2 check(s) failed" in r.err

    write_profile(user_sites, "long", '[slurm]\npartition = "short"\nwalltime = "00:10:00"\n'
                  'memory = "1GiB"\n')
    r = cli("site", "check", "long")
    assert r.code == 2, r
    assert "FAIL  walltime 00:10:00 is over short's MaxTime 00:01:00" in r.out
    assert "ok    cores=1, memory=1GiB fit on 3 of 3 node(s) of short" in r.out


def test_site_init_from_sinfo(testbed: Path, cli: Cli, user_sites: Path) -> None:
    r = cli("site", "init", "mine", "--partition", "short", "--interface", "hpcsbr0")
    assert r.code == 0, r
    p = profiles.load("mine").profile.slurm
    assert p is not None
    assert p.partition == "short"
    assert p.walltime == 60  # the partition's MaxTime, below the 1 h default
    assert p.cores == 2
    assert p.memory == 4000 * 1024**2
    assert p.interface == "hpcsbr0"
    # never replaced without --force
    r = cli("site", "init", "mine", "--partition", "debug")
    assert r.code == 2
    assert "exists; pass --force" in r.err
    r = cli("site", "init", "x", "--partition", "nosuch")
    assert r.code == 2
    assert "--partition 'nosuch': no such partition" in r.err
    assert cli("site", "check", "mine").code == 0
