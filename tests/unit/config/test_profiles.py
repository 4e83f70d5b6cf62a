from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import write_profile
from hpcscale.config import profiles
from hpcscale.errors import ProfileError

SITE = """
name = "site"
description = "a site"
[slurm]
partition = "compute"
walltime = "02:00:00"
cores = 8
processes = 2
memory = "32GiB"
max_jobs = 10
interface = "ib0"
prologue = ["module load python"]
"""


def test_builtins_load() -> None:
    local = profiles.load("local").profile
    assert local.kind == "local"
    testbed = profiles.load("testbed").profile
    assert testbed.slurm is not None
    assert testbed.slurm.partition == "debug"
    assert testbed.slurm.interface == "hpcsbr0"
    assert profiles.load("example-slurm").profile.slurm is not None


def test_full_profile_parsed_exactly(user_sites: Path) -> None:
    write_profile(user_sites, "site", SITE)
    p = profiles.load("site").profile
    assert p.slurm is not None
    assert p.slurm.memory == 32 * 1024**3
    assert p.slurm.walltime == 7200
    assert p.slurm.threads == 4
    assert p.slurm.worker_memory == 16 * 1024**3
    assert p.slurm.prologue == ("module load python",)


def test_gb_and_gib_differ(user_sites: Path) -> None:
    write_profile(user_sites, "a", SITE.replace('"site"', '"a"'))
    write_profile(user_sites, "b", SITE.replace('"site"', '"b"').replace("32GiB", "32GB"))
    a, b = profiles.load("a").profile.slurm, profiles.load("b").profile.slurm
    assert a is not None
    assert b is not None
    assert a.memory == 32 * 1024**3
    assert b.memory == 32 * 1000**3


def test_extends_overrides_key_by_key_and_records_sources(user_sites: Path) -> None:
    site = write_profile(user_sites, "site", SITE)
    lab = write_profile(user_sites, "lab", 'extends = "site"\n[slurm]\naccount = "mylab"\n')
    res = profiles.load("lab")
    assert res.profile.slurm is not None
    assert res.profile.slurm.account == "mylab"
    assert res.profile.slurm.partition == "compute"
    assert res.profile.description == "a site"
    assert res.files == (lab, site)
    assert res.sources["slurm.account"] == lab
    assert res.sources["slurm.partition"] == site


def test_extends_loop_refused(user_sites: Path) -> None:
    write_profile(user_sites, "a", 'extends = "b"\n[slurm]\npartition = "x"\n')
    write_profile(user_sites, "b", 'extends = "a"\n')
    with pytest.raises(ProfileError, match=r"extends loops \(a -> b -> a\)"):
        profiles.load("a")


def test_extends_unknown_parent(user_sites: Path) -> None:
    write_profile(user_sites, "a", 'extends = "nope"\n')
    with pytest.raises(ProfileError, match=r"a\.toml: extends 'nope' is not a known profile"):
        profiles.load("a")


def test_unknown_site_lists_known() -> None:
    with pytest.raises(ProfileError, match=r"site 'nope' is not a known profile \(known: .*local"):
        profiles.load("nope")


def test_search_path_later_wins_and_shadows(
    user_sites: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab1, lab2 = tmp_path / "lab1", tmp_path / "lab2"
    lab1.mkdir()
    lab2.mkdir()
    f1 = write_profile(lab1, "site", SITE.replace("max_jobs = 10", "max_jobs = 1"))
    f2 = write_profile(lab2, "site", SITE.replace("max_jobs = 10", "max_jobs = 2"))
    monkeypatch.setenv("HPCSCALE_SITE_PATH", f"{lab1}:{lab2}")
    found = profiles.discover()
    assert found["site"].path == f2
    assert found["site"].shadows == (f1,)
    s = profiles.load("site").profile.slurm
    assert s is not None
    assert s.max_jobs == 2
    # the user's own directory wins over every lab directory
    f3 = write_profile(user_sites, "site", SITE.replace("max_jobs = 10", "max_jobs = 3"))
    found = profiles.discover()
    assert found["site"].path == f3
    assert found["site"].shadows == (f1, f2)
    s = profiles.load("site").profile.slurm
    assert s is not None
    assert s.max_jobs == 3
    # a user file shadows a built-in too
    write_profile(user_sites, "testbed", SITE.replace('"site"', '"testbed"'))
    assert profiles.discover()["testbed"].shadows == (profiles.builtin_dir() / "testbed.toml",)


BAD = [
    # (profile text, message fragment)
    ('[slurm]\npartition = "debug"\nmemory = "4G"\n', r"slurm\.memory = '4G': .*explicit unit"),
    ('[slurm]\npartition = "debug\\n#SBATCH --x"\n', r"slurm\.partition .*single line"),
    ('[slurm]\npartition = "debug;rm -rf ~"\n',
     r"slurm\.partition must be made of letters.*, got 'debug;rm -rf ~'"),
    ('[slurm]\npartition = "debug"\naccount = "a b"\n',
     r"slurm\.account must be made of letters.*, got 'a b'"),
    ('[slurm]\npartition = "debug"\nqos = "$(id)"\n',
     r"slurm\.qos must be made of letters.*, got '\$\(id\)'"),
    ('[slurm]\npartition = "debug"\nwalltime = "1h"\n', r"slurm\.walltime = '1h'.*SLURM walltime"),
    ('[slurm]\npartition = "debug"\ncores = 0\n',
     r"slurm\.cores = 0: .*greater than or equal to 1"),
    ('[slurm]\npartition = "debug"\ncores = 3\nprocesses = 2\n', r"multiple of processes"),
    ('[slurm]\npartition = "debug"\ninterface = "eth0;ls"\n',
     r"slurm\.interface must be a network interface name.*, got 'eth0;ls'"),
    ('[slurm]\npartition = "debug"\nextra_directives = ["--gres=gpu:1 --x"]\n',
     r"extra_directives must be one sbatch option per entry.*, got"),
    ('[slurm]\npartition = "debug"\nextra_directives = ["--mem=1G"]\n',
     r"set from the profile's own keys"),
    ('[slurm]\npartition = "debug"\nprologue = ["a\\nb"]\n', r"slurm\.prologue .*single line"),
    ('[slurm]\npartition = "debug"\npython = "python; id"\n',
     r"slurm\.python must be a path without spaces or shell characters, got 'python; id'"),
    ('[slurm]\npartition = "debug"\nmax_jobs = "ten"\n', r"slurm\.max_jobs = 'ten'"),
    ('[slurm]\npartition = "debug"\npartiton = "x"\n',
     r"unknown key 'slurm\.partiton'; valid keys: partition, account"),
    ('parition = "x"\n', r"unknown key 'parition'; valid keys: name, description, extends"),
    ('[slurm]\ncores = 2\n', r"missing required key 'slurm\.partition'"),
    ('kind = "pbs"\n', r"kind = 'pbs': must be one of slurm, local"),
    ('[slurm\npartition = "x"\n', r"TOML syntax error: .*line 1, column"),
    ('name = "other"\n[slurm]\npartition = "x"\n', r"name = 'other' but the file is bad\.toml"),
    ('slurm = 3\n', r"\[slurm\] must be a table"),
    # the backend is the profile's type: a table of the other backend would be ignored
    ('[slurm]\npartition = "debug"\n[local]\nworkers = 2\n',
     r'a slurm profile has no \[local\] table .*set kind = "local"'),
    ('kind = "local"\n[slurm]\npartition = "debug"\n',
     r'a local profile has no \[slurm\] table .*set kind = "slurm"'),
    ('kind = "local"\n[local]\nscheduler = "threads"\n',
     r"local\.scheduler = 'threads'.*'auto' or 'distributed'"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_bad_profiles_one_clear_message(user_sites: Path, text: str, message: str) -> None:
    path = write_profile(user_sites, "bad", text)
    with pytest.raises(ProfileError, match=message) as info:
        profiles.load("bad")
    msg = str(info.value)
    assert str(path) in msg, msg
    assert "\n" not in msg


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_profile_writable_by_others_refused(user_sites: Path, mode: int) -> None:
    write_profile(user_sites, "open", SITE.replace('"site"', '"open"'), mode=mode)
    with pytest.raises(ProfileError, match=r"refused because .*writable by .*--trust-profiles"):
        profiles.load("open")
    assert profiles.load("open", trust=True).profile.name == "open"


def test_lab_directory_writable_by_group_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = tmp_path / "lab"
    lab.mkdir()
    lab.chmod(0o775)
    write_profile(lab, "labsite", SITE.replace('"site"', '"labsite"'))
    monkeypatch.setenv("HPCSCALE_SITE_PATH", str(lab))
    with pytest.raises(ProfileError, match=r"lab is writable by its group"):
        profiles.load("labsite")


def test_profile_owned_by_the_lab_lead_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.getuid() != 0:
        pytest.skip("needs root to give a file to another user")
    lab = tmp_path / "lab"
    lab.mkdir(mode=0o755)
    path = write_profile(lab, "leads", SITE.replace('"site"', '"leads"'), mode=0o644)
    os.chown(path, 12345, 12345)
    os.chown(lab, 12345, 12345)
    monkeypatch.setenv("HPCSCALE_SITE_PATH", str(lab))
    assert profiles.load("leads").profile.name == "leads"
