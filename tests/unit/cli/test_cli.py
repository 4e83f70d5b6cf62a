"""The CLI as a user meets it: help, site commands, and bad input without tracebacks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import zarr

from helpers import MEAN_SPEC, Cli, cli_commands, write_profile
from hpcscale.cli import app

COMMANDS = cli_commands(app)


def test_command_table_is_complete() -> None:
    names = {" ".join(n) for n, _ in COMMANDS}
    assert {"submit", "plan", "script", "reduce", "filter", "demo", "runs", "status",
            "cancel", "cleanup", "site list", "site show", "site check", "site init",
            "site share"} <= names


@pytest.mark.parametrize(("name", "callback"), COMMANDS, ids=[" ".join(n) for n, _ in COMMANDS])
def test_every_command_has_help_and_an_example(
    name: tuple[str, ...], callback: object, cli: Cli
) -> None:
    doc = getattr(callback, "__doc__", None) or ""
    assert doc.strip(), f"hpcscale {' '.join(name)} has no help text"
    assert "Example:" in doc, f"hpcscale {' '.join(name)} has no example in its help"
    r = cli(*name, "--help")
    assert r.code == 0, r
    assert doc.strip().splitlines()[0][:40] in " ".join(r.out.split())


def test_site_list_shows_origin_and_shadowing(cli: Cli, user_sites: Path) -> None:
    write_profile(user_sites, "testbed", '[slurm]\npartition = "debug"\n')
    r = cli("site", "list")
    assert r.code == 0, r
    line = next(ln for ln in r.out.splitlines() if ln.startswith("testbed "))
    assert "user" in line
    assert str(user_sites / "testbed.toml") in line
    assert "shadows" in line
    assert "site-configs/testbed.toml" in line
    rows = json.loads(cli("--json", "site", "list").out)
    assert {"local", "testbed", "example-slurm"} <= {r["name"] for r in rows}


def test_site_show_names_sources_and_prologue(cli: Cli, user_sites: Path) -> None:
    write_profile(user_sites, "lab", 'extends = "example-slurm"\n[slurm]\naccount = "lab7"\n')
    r = cli("site", "show", "lab")
    assert r.code == 0, r
    acc = next(ln for ln in r.out.splitlines() if ln.startswith("slurm.account"))
    assert "lab7" in acc
    assert str(user_sites / "lab.toml") in acc
    part = next(ln for ln in r.out.splitlines() if ln.startswith("slurm.partition"))
    assert "compute" in part
    assert "example-slurm.toml" in part
    mem = next(ln for ln in r.out.splitlines() if ln.startswith("slurm.memory"))
    assert "32GiB (34359738368 bytes)" in mem
    assert "    module load python/3.11" in r.out


def test_script_prints_worker_job(cli: Cli) -> None:
    r = cli("script", "--site", "testbed")
    assert r.code == 0, r
    assert "#SBATCH -p debug" in r.out
    assert "--memory-limit 1073741824" in r.out


def test_site_share_group_readable(cli: Cli, user_sites: Path, tmp_path: Path) -> None:
    write_profile(user_sites, "mine", '[slurm]\npartition = "debug"\naccount = "x"\n')
    lab = tmp_path / "lab"
    lab.mkdir(mode=0o750)
    r = cli("site", "share", "mine", str(lab))
    assert r.code == 0, r
    shared = lab / "mine.toml"
    assert (shared.stat().st_mode & 0o777) == 0o640
    assert shared.read_text() == (user_sites / "mine.toml").read_text()
    r = cli("site", "share", "mine", str(lab))
    assert r.code == 2
    assert "exists; pass --force" in r.err


# --- bad input: one line, the right exit code, no traceback, nothing touched ---------------

GOOD_SPEC = MEAN_SPEC


@pytest.fixture
def world(tmp_path: Path, user_sites: Path) -> dict[str, Path]:
    inp = tmp_path / "in.zarr"
    arr = zarr.create_array(inp, shape=(8, 6, 5), chunks=(4, 6, 5), dtype="float32")
    arr[...] = np.arange(240, dtype="float32").reshape(8, 6, 5)
    text = zarr.create_array(tmp_path / "text.zarr", shape=(3,), dtype=str)
    text[...] = np.array(["a", "b", "c"])
    (tmp_path / "existing").mkdir()
    (tmp_path / "existing" / "notes.txt").write_text("my thesis")
    write_profile(user_sites, "badmem", '[slurm]\npartition = "debug"\nmemory = "4G"\n')
    write_profile(user_sites, "open", '[slurm]\npartition = "debug"\n', mode=0o666)
    write_profile(user_sites, "newline", '[slurm]\npartition = "debug\\n#SBATCH --x"\n')
    return {"tmp": tmp_path, "in": inp, "text": tmp_path / "text.zarr",
            "existing": tmp_path / "existing"}


def _spec(world: dict[str, Path], body: str, name: str = "job.toml") -> str:
    path = world["tmp"] / name
    path.write_text(body.format(inp=world["in"], out=world["tmp"] / "out.zarr",
                                text=world["text"], existing=world["existing"]))
    return str(path)


# (argv builder, exit code, message fragment)
BAD_INPUTS: list[tuple[str, object, int, str]] = [
    ("unknown site", lambda w: ["script", "--site", "nope"], 2, "site 'nope' is not a known"),
    ("memory without unit", lambda w: ["script", "--site", "badmem"], 2, "explicit unit"),
    ("world-writable profile", lambda w: ["script", "--site", "open"], 2,
     "writable by every user"),
    ("newline in partition", lambda w: ["script", "--site", "newline"], 2, "single line"),
    ("script of local profile", lambda w: ["script", "--site", "local"], 2, "local profile"),
    ("show unknown", lambda w: ["site", "show", "nope"], 2, "not a known profile"),
    ("bad profile name", lambda w: ["site", "show", "../etc"], 2, "not a profile name"),
    ("share to missing dir", lambda w: ["site", "share", "testbed", str(w["tmp"] / "no")], 2,
     "not a directory"),
    ("missing job spec", lambda w: ["submit", str(w["tmp"] / "no.toml"), "--site", "local"], 2,
     "no.toml: no such file"),
    ("toml syntax", lambda w: ["submit", _spec(w, "[input\n"), "--site", "local"], 2,
     "TOML syntax error"),
    ("unknown spec key", lambda w: ["submit", _spec(w, GOOD_SPEC + "colour = 1\n"), "--site",
                                    "local"], 2, "colour"),
    ("no steps", lambda w: ["submit", _spec(w, '[input]\npath = "x"\n[output]\npath = "y"\n'),
                            "--site", "local"], 2, "steps"),
    ("missing output", lambda w: ["submit", _spec(w, '[input]\npath = "x"\n[[steps]]\n'
                                  'reduce = "mean"\n'), "--site", "local"], 2, "output"),
    ("unknown reduction", lambda w: ["submit", _spec(w, GOOD_SPEC.replace('"mean"', '"avg"')),
                                     "--site", "local"], 2, "avg"),
    ("axis out of range", lambda w: ["submit", _spec(w, GOOD_SPEC.replace("[0]", "[7]")),
                                     "--site", "local"], 2, "7"),
    ("axis name unknown", lambda w: ["submit", _spec(w, GOOD_SPEC.replace("[0]", '["time"]')),
                                     "--site", "local"], 2, "time"),
    ("missing input", lambda w: ["reduce", str(w["tmp"] / "nope.zarr"), str(w["tmp"] / "o.zarr"),
                                 "--site", "local"], 2, "nope.zarr"),
    ("non-numeric input", lambda w: ["reduce", str(w["text"]), str(w["tmp"] / "o.zarr"),
                                     "--site", "local"], 2, "must be bool, integer or float"),
    ("unknown var", lambda w: ["reduce", str(w["in"]), str(w["tmp"] / "o.zarr"), "--var", "zz",
                               "--site", "local"], 2, "zz"),
    ("negative sigma", lambda w: ["filter", str(w["in"]), str(w["tmp"] / "o.zarr"), "--filter",
                                  "gaussian", "--sigma", "-1", "--site", "local"], 2, "sigma"),
    ("nan sigma", lambda w: ["filter", str(w["in"]), str(w["tmp"] / "o.zarr"), "--filter",
                             "gaussian", "--sigma", "nan", "--site", "local"], 2, "sigma"),
    ("size zero", lambda w: ["filter", str(w["in"]), str(w["tmp"] / "o.zarr"), "--filter",
                             "median", "--size", "0", "--site", "local"], 2, "size"),
    ("reach over array", lambda w: ["filter", str(w["in"]), str(w["tmp"] / "o.zarr"), "--filter",
                                    "uniform", "--size", "99", "--site", "local"], 2,
     "reaches 49 samples"),
    ("histogram without range", lambda w: ["reduce", str(w["in"]), str(w["tmp"] / "o.zarr"),
                                           "--op", "histogram", "--bins", "8", "--site",
                                           "local"], 2, "range"),
    ("unknown filter", lambda w: ["filter", str(w["in"]), str(w["tmp"] / "o.zarr"), "--filter",
                                  "blur"], 2, "blur"),
    ("unknown mode", lambda w: ["filter", str(w["in"]), str(w["tmp"] / "o.zarr"), "--filter",
                                "gaussian", "--sigma", "1", "--mode", "circular"], 2, "circular"),
    ("jobs zero", lambda w: ["reduce", str(w["in"]), str(w["tmp"] / "o.zarr"), "--jobs", "0",
                             "--site", "testbed"], 2, "--jobs '0'"),
    ("jobs not a number", lambda w: ["reduce", str(w["in"]), str(w["tmp"] / "o.zarr"), "--jobs",
                                     "many", "--site", "testbed"], 2, "--jobs 'many'"),
    ("output exists", lambda w: ["reduce", str(w["in"]), str(w["existing"]), "--site", "local"],
     2, "existing"),
    ("overwrite a foreign dir", lambda w: ["reduce", str(w["in"]), str(w["existing"]),
                                           "--overwrite", "--site", "local"], 2, "existing"),
    ("output parent missing", lambda w: ["reduce", str(w["in"]),
                                         str(w["tmp"] / "no" / "dir" / "o.zarr"), "--site",
                                         "local"], 2, "o.zarr"),
    ("unknown run", lambda w: ["status", "nosuchrun"], 2, "RUN 'nosuchrun'"),
    ("unknown option", lambda w: ["submit", "--colour"], 2, "No such option"),
]


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest()
                                       if p.is_file() else "dir")
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize(("label", "argv", "code", "fragment"), BAD_INPUTS,
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_one_line_no_traceback_nothing_touched(
    label: str, argv, code: int, fragment: str, cli: Cli, world: dict[str, Path]
) -> None:
    args = argv(world)
    before = _snapshot(world["tmp"])
    runs_before = sorted(Path(os.environ["HPCSCALE_RUNS_DIR"]).glob("*")) \
        if Path(os.environ["HPCSCALE_RUNS_DIR"]).exists() else []
    r = cli(*args)
    assert r.code == code, r
    assert fragment in r.err, r
    assert "Traceback" not in r.err + r.out
    if not r.err.lstrip().startswith("Usage:"):  # Typer's own usage errors have a usage block
        assert len(r.err.strip().splitlines()) == 1, r.err
    after = _snapshot(world["tmp"])
    after = {k: v for k, v in after.items() if not k.startswith("job.toml")}
    before = {k: v for k, v in before.items() if not k.startswith("job.toml")}
    assert after == before, "a refused command changed files"
    runs_dir = Path(os.environ["HPCSCALE_RUNS_DIR"])
    runs_after = sorted(runs_dir.glob("*")) if runs_dir.exists() else []
    assert runs_after == runs_before, "a refused command created a run (and maybe jobs)"


def test_choices_come_from_the_ops_registry(cli: Cli) -> None:
    from hpcscale.ops import FILTERS, MODES, REDUCTIONS

    reduce_help = " ".join(cli("reduce", "--help").out.split())
    filter_help = " ".join(cli("filter", "--help").out.split())
    assert "<" + "|".join([*REDUCTIONS, "histogram"]) + ">" in reduce_help.replace(" ", "")
    assert "|".join(FILTERS) in filter_help.replace(" ", "")
    assert "|".join(MODES) in filter_help.replace(" ", "")
