"""The documentation and the example job specs do what they say.

* Every ``jobs/*.toml`` runs with ``--site local`` on the demo data and its
  result equals numpy/scipy on the whole array.
* In ``docs/*.md``, ``console`` blocks are executed: each line that starts
  with ``$ hpcscale`` is run in the directory holding ``hpcscale-demo/`` and
  ``jobs/`` and must exit 0 (``--print-spec`` output is compared too). ``bash``
  blocks need a cluster and are not run. ``python`` blocks are executed after
  every job has run. TOML job specs and profiles shown in the docs validate,
  and the profile error messages quoted in docs/profiles.md are the real ones.
* docs/cli.md carries every command's ``--help``, generated; after changing
  the CLI, regenerate it with ``.venv/bin/python tests/docs/test_docs.py --write-cli``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
import typer.main
import xarray as xr
from scipy import ndimage
from typer.testing import CliRunner

if __name__ == "__main__":  # run as a script (--write-cli): the helpers are in tests/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import CliResult, cli_commands, invoke_in_process, write_profile
from hpcscale import demo as sample
from hpcscale.cli import app
from hpcscale.config import jobspec, profiles
from hpcscale.io.output import is_complete

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
JOBS = sorted((REPO / "jobs").glob("*.toml"))
CLI_MD = DOCS / "cli.md"
BEGIN = "<!-- BEGIN GENERATED: .venv/bin/python tests/docs/test_docs.py --write-cli -->"
END = "<!-- END GENERATED -->"
HELP_WIDTH = 80

Cli = Callable[..., CliResult]


# -- markdown ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # of the opening fence
    section: str  # the last "## " heading above it


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a markdown page, in order."""
    found: list[Block] = []
    lang: str | None = None
    body: list[str] = []
    start = 0
    section = ""
    for no, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if lang is None:
            if line.startswith("## "):
                section = line[3:].strip()
            if line.startswith("```"):
                lang, body, start = line[3:].strip(), [], no
        elif line.startswith("```"):
            found.append(Block(lang, "\n".join(body) + "\n", start, section))
            lang = None
        else:
            body.append(line)
    assert lang is None, f"{page.name}: code block at line {start} is not closed"
    return found


@dataclass(frozen=True)
class Example:
    command: str
    output: str
    where: str


def console_examples(page: Path) -> list[Example]:
    """``$ hpcscale ...`` lines of the page's console blocks, with the output shown under each."""
    found: list[Example] = []
    for block in blocks(page):
        if block.lang != "console":
            continue
        current: list[str] | None = None
        for line in block.text.splitlines():
            if line.startswith("$ "):
                assert line.startswith("$ hpcscale "), (
                    f"{page.name}:{block.line}: console blocks may only run hpcscale: {line!r}"
                )
                current = [line[2:]]
                found.append(Example(line[2:], "", f"{page.name}:{block.line}"))
            elif current is not None:
                last = found[-1]
                found[-1] = Example(last.command, last.output + line + "\n", last.where)
    return found


def _page_id(page: Path) -> str:
    return page.name


# -- a shared working directory: demo data, jobs/, and every job run once ------------------------


@dataclass(frozen=True)
class Ran:
    workdir: Path
    results: dict[str, tuple[int, str, str]]  # job file name -> (exit code, stdout, stderr)


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    """The demo data and jobs/ in a fresh directory, every job submitted once with --site local."""
    workdir = tmp_path_factory.mktemp("docs-workdir")
    home = tmp_path_factory.mktemp("docs-home")
    (home / "sites").mkdir(mode=0o755)
    results: dict[str, tuple[int, str, str]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPCSCALE_USER_SITES", str(home / "sites"))
        mp.setenv("HPCSCALE_RUNS_DIR", str(home / "runs"))
        mp.delenv("HPCSCALE_SITE_PATH", raising=False)
        mp.delenv("HPCSCALE_SITE", raising=False)
        mp.chdir(workdir)
        sample.make_all(Path("hpcscale-demo"))
        shutil.copytree(REPO / "jobs", workdir / "jobs")
        shutil.copytree(REPO / "docs" / "examples", workdir / "docs" / "examples")
        for job in JOBS:
            results[job.name] = invoke_in_process("submit", f"jobs/{job.name}", "--site", "local")
    return Ran(workdir, results)


def _input(workdir: Path, name: str, var: str) -> np.ndarray:
    # The demo inputs have no consolidated metadata; say so, or xarray warns.
    return xr.open_zarr(workdir / "hpcscale-demo" / name, consolidated=False)[var].values


def _output(workdir: Path, name: str) -> xr.Dataset:
    path = workdir / "hpcscale-demo" / "results" / name
    assert is_complete(path), f"{path} is not marked complete"
    return xr.open_zarr(path)


# -- what each job must compute, on the whole array --------------------------------------------


def _climate_mean_time(d: Path) -> None:
    t = _input(d, "climate.zarr", "temperature")
    ds = _output(d, "climate-mean-time.zarr")
    out = ds["temperature"]
    assert out.dims == ("lat", "lon")
    assert out.dtype == np.float32
    assert out.attrs["units"] == "degC"
    np.testing.assert_array_equal(ds["lat"], xr.open_zarr(
        d / "hpcscale-demo/climate.zarr", consolidated=False)["lat"])
    np.testing.assert_allclose(out.values, t.mean(axis=0, dtype=np.float64), rtol=1e-6)


def _climate_std(d: Path) -> None:
    t = _input(d, "climate.zarr", "temperature")
    out = _output(d, "climate-std.zarr")["temperature_std"]
    assert out.dims == ("lat", "lon")
    assert out.dtype == np.float32
    np.testing.assert_allclose(out.values, t.std(axis=0, ddof=1, dtype=np.float64), rtol=1e-6)
    # ddof = 1 really reached the computation
    assert not np.allclose(out.values, t.std(axis=0, dtype=np.float64), rtol=1e-6)


def _climate_histogram_per_time(d: Path) -> None:
    t = _input(d, "climate.zarr", "temperature")
    ds = _output(d, "climate-histogram-per-time.zarr")
    counts = ds["temperature"]
    assert counts.dims == ("time", "bin")
    assert counts.dtype == np.int64
    expected = np.stack([np.histogram(t[i], bins=45, range=(-40.0, 50.0))[0]
                         for i in range(t.shape[0])])
    np.testing.assert_array_equal(counts.values, expected)
    assert counts.values.sum() == t.size  # the demo data lie within the range
    np.testing.assert_allclose(ds["bin"], np.arange(-39.0, 50.0, 2.0))
    np.testing.assert_allclose(ds["bin_lower"], np.arange(-40.0, 49.0, 2.0))
    np.testing.assert_allclose(ds["bin_upper"], np.arange(-38.0, 51.0, 2.0))


def _climate_smooth_lon(d: Path) -> None:
    t = _input(d, "climate.zarr", "temperature")
    out = _output(d, "climate-smooth-lon.zarr")["temperature"]
    assert out.dims == ("time", "lat", "lon")
    expected = ndimage.gaussian_filter(t, sigma=(0, 0, 3), mode="wrap")
    np.testing.assert_array_equal(out.values, expected)
    # wrap, not the default reflect, at the ends of the longitude
    assert not np.array_equal(out.values[..., :4],
                              ndimage.gaussian_filter(t, sigma=(0, 0, 3))[..., :4])


def _cells_gaussian(d: Path) -> None:
    cells = _input(d, "cells.zarr", "cells")
    out = _output(d, "cells-gaussian-3d.zarr")["cells"]
    assert out.dims == ("z", "y", "x")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out.values, ndimage.gaussian_filter(cells, sigma=(1, 2, 2)))


def _cells_median(d: Path) -> None:
    cells = _input(d, "cells.zarr", "cells")
    out = _output(d, "cells-median.zarr")["cells"]
    assert out.dims == ("z", "y", "x")
    assert out.dtype == np.uint16
    expected = ndimage.median_filter(cells, size=(1, 3, 3), mode="nearest")
    np.testing.assert_array_equal(out.values, expected)
    assert not np.array_equal(out.values, cells)


def _cells_max_projection(d: Path) -> None:
    cells = _input(d, "cells.zarr", "cells")
    ds = _output(d, "cells-max-projection.zarr")
    out = ds["projection"]
    assert out.dims == ("y", "x")
    assert out.dtype == np.uint16
    expected = ndimage.gaussian_filter(cells, sigma=(0, 1.5, 1.5)).max(axis=0)
    np.testing.assert_array_equal(out.values, expected)
    assert [s.get("filter", s.get("reduce")) for s in ds.attrs["provenance"]["steps"]] == [
        "gaussian", "max"]


CHECKS: dict[str, Callable[[Path], None]] = {
    "climate-mean.toml": _climate_mean_time,
    "climate-std.toml": _climate_std,
    "climate-histogram-per-time.toml": _climate_histogram_per_time,
    "climate-smooth-lon.toml": _climate_smooth_lon,
    "cells-gaussian.toml": _cells_gaussian,
    "cells-median.toml": _cells_median,
    "cells-max-projection.toml": _cells_max_projection,
}


# -- jobs/ ----------------------------------------------------------------------------------------


def test_every_job_has_a_numeric_check() -> None:
    assert JOBS, "jobs/ holds no job specs"
    assert {j.name for j in JOBS} == set(CHECKS), "add a check to CHECKS for every jobs/*.toml"


@pytest.mark.parametrize("job", JOBS, ids=[j.name for j in JOBS])
def test_job_file_says_what_it_does_and_how_to_run_it(job: Path) -> None:
    text = job.read_text(encoding="utf-8")
    head = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        head.append(line)
    assert len(head) >= 2, f"{job.name} must start with a comment saying what it does"
    assert f"hpcscale submit jobs/{job.name} --site local" in "\n".join(head)
    spec = jobspec.load(job)
    assert spec.description
    assert spec.input.path.startswith("hpcscale-demo/")
    assert spec.output.path.startswith("hpcscale-demo/results/")
    assert spec.output.overwrite, "examples must be re-runnable"


@pytest.mark.parametrize("job", JOBS, ids=[j.name for j in JOBS])
def test_job_runs_and_equals_numpy(job: Path, ran: Ran) -> None:
    code, out, err = ran.results[job.name]
    assert code == 0, f"hpcscale submit jobs/{job.name} --site local: exit {code}\n{out}\n{err}"
    assert "done in" in out
    CHECKS[job.name](ran.workdir)


def test_every_job_is_documented() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in PAGES if p != CLI_MD)
    missing = [j.name for j in JOBS if f"jobs/{j.name}" not in text]
    assert not missing, f"jobs not shown in any docs page: {missing}"


# -- docs/*.md --------------------------------------------------------------------------------


def test_docs_exist() -> None:
    names = {p.name for p in PAGES}
    assert {"quickstart.md", "profiles.md", "jobspec.md", "reductions.md", "filters.md",
            "histograms.md", "pipelines.md", "testbed.md", "cli.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_relative_links_resolve(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" in target:
            continue
        assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_referenced_job_files_exist(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    # jobs/NAME.toml as a path relative to the checkout (not /home/me/jobs/...)
    for name in re.findall(r"(?<![\w/.~-])jobs/([A-Za-z0-9_.\-]+\.toml)", text):
        assert (REPO / "jobs" / name).is_file(), f"{page.name} refers to missing jobs/{name}"


CONSOLE_PAGES = [p for p in PAGES if console_examples(p)]


@pytest.mark.parametrize("page", CONSOLE_PAGES, ids=_page_id)
def test_console_examples_run(page: Path, ran: Ran, cli: Cli,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ran.workdir)
    for ex in console_examples(page):
        r = cli(*shlex.split(ex.command)[1:])
        assert r.code == 0, f"{ex.where}: `{ex.command}` exited {r.code}: {r.err}"
        if "--print-spec" in ex.command:
            # shown verbatim, and itself a valid job spec
            assert r.out.strip() == ex.output.strip(), f"{ex.where}: `{ex.command}`:\n{r.out}"
            jobspec.parse(tomllib.loads(r.out), ex.where)


def test_quickstart_runs_a_job_and_lists_it() -> None:
    commands = [ex.command for ex in console_examples(DOCS / "quickstart.md")]
    assert any(c.startswith("hpcscale submit jobs/") and "--site local" in c for c in commands)
    assert "hpcscale runs" in commands
    assert "hpcscale site list" in commands


PYTHON_PAGES = [p for p in PAGES if any(b.lang == "python" for b in blocks(p))]


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=_page_id)
def test_python_examples_run(page: Path, ran: Ran, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert all(code == 0 for code, _, _ in ran.results.values()), "a job failed; see its test"
    monkeypatch.chdir(ran.workdir)
    for block in blocks(page):
        if block.lang != "python":
            continue
        code = compile(block.text, f"{page.name}:{block.line}", "exec")
        exec(code, {"__name__": "__docs__"})
    capsys.readouterr()


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_toml_job_specs_validate(page: Path) -> None:
    for block in blocks(page):
        if block.lang == "toml" and "[input]" in block.text:
            jobspec.parse(tomllib.loads(block.text), f"{page.name}:{block.line}")
        elif block.lang == "toml" and "[map]" in block.text:
            jobspec.parse_map(tomllib.loads(block.text), f"{page.name}:{block.line}")


def test_profile_examples_load(user_sites: Path) -> None:
    shown = []
    for block in blocks(DOCS / "profiles.md"):
        if block.lang != "toml" or block.section == "Validation messages":
            continue
        data = tomllib.loads(block.text)
        assert "name" in data, f"profiles.md:{block.line}: give example profiles a name"
        write_profile(user_sites, data["name"], block.text)
        shown.append(data["name"])
    assert {"mysite", "mylab"} <= set(shown)
    for name in shown:
        profiles.load(name)
    lab = profiles.load("mylab").profile
    assert lab.slurm is not None
    assert lab.slurm.account == "mylab"
    assert lab.slurm.partition == "compute"  # inherited from mysite
    assert lab.slurm.memory == 32 * 1024**3


def test_profile_validation_messages_are_real(cli: Cli, user_sites: Path) -> None:
    section = [b for b in blocks(DOCS / "profiles.md") if b.section == "Validation messages"]
    pairs = list(zip(section[::2], section[1::2], strict=True))
    assert len(pairs) >= 6
    path = user_sites / "mysite.toml"
    for bad, message in pairs:
        assert (bad.lang, message.lang) == ("toml", "text"), f"profiles.md:{bad.line}"
        write_profile(user_sites, "mysite", bad.text)
        r = cli("site", "show", "mysite")
        assert r.code == 2, r
        got = r.err.strip().replace(str(path), "~/.config/hpcscale/sites/mysite.toml")
        assert got == message.text.strip(), f"profiles.md:{message.line}: the real one is\n{got}"


def test_group_writable_message_is_real(cli: Cli, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (documented,) = [b.text.strip() for b in blocks(DOCS / "profiles.md")
                     if b.lang == "text" and "refused because" in b.text]
    lab = tmp_path / "hpcscale-sites"
    lab.mkdir()
    lab.chmod(0o775)
    write_profile(lab, "mylab", 'extends = "testbed"\n[slurm]\naccount = "mylab"\n', 0o640)
    monkeypatch.setenv("HPCSCALE_SITE_PATH", str(lab))
    r = cli("site", "show", "mylab")
    assert r.code == 2, r
    got = r.err.strip().replace(str(lab), "/project/mylab/hpcscale-sites")
    assert got == documented
    assert cli("--trust-profiles", "site", "show", "mylab").code == 0


# -- docs/cli.md --------------------------------------------------------------------------------


COMMANDS = cli_commands(app)


def _help(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], prog_name="hpcscale",
                                terminal_width=HELP_WIDTH)
    if result.exit_code != 0:
        raise RuntimeError(f"hpcscale {' '.join(args)} --help: exit {result.exit_code}")
    return result.output.rstrip() + "\n"


def _walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    # Typer's commands are click commands (possibly of the click that typer vendors).
    yield path, cmd
    if hasattr(cmd, "list_commands"):
        ctx = cmd.context_class(cmd)
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            assert sub is not None
            yield from _walk(sub, (*path, name))


def render_cli_reference() -> str:
    """The generated part of docs/cli.md: every command's first help line and full --help."""
    parts = [BEGIN, ""]
    for path, cmd in _walk(typer.main.get_command(app), ()):
        title = " ".join(("hpcscale", *path))
        first = (cmd.help or "").strip().splitlines()[0] if cmd.help else ""
        parts += [f"## {title}", ""]
        if first:
            parts += [first, ""]
        parts += ["```text", _help(list(path)).rstrip("\n"), "```", ""]
    parts.append(END)
    return "\n".join(parts) + "\n"


def _generated_part(text: str) -> str:
    start, end = text.find(BEGIN), text.find(END)
    assert start >= 0, f"docs/cli.md lacks the marker {BEGIN}"
    assert end > start, f"docs/cli.md lacks the marker {END} after {BEGIN}"
    return text[start : end + len(END)] + "\n"


def write_cli_reference() -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    CLI_MD.write_text(text[:start] + render_cli_reference() + text[end + len(END) + 1 :],
                      encoding="utf-8")


@pytest.mark.parametrize(("name", "callback"), COMMANDS, ids=[" ".join(n) for n, _ in COMMANDS])
def test_every_command_is_in_cli_md(name: tuple[str, ...], callback: object) -> None:
    text = CLI_MD.read_text(encoding="utf-8")
    title = "## hpcscale " + " ".join(name)
    assert f"\n{title}\n" in text, (
        f"docs/cli.md has no section for hpcscale {' '.join(name)}; "
        "regenerate: .venv/bin/python tests/docs/test_docs.py --write-cli")
    section = text.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]
    first = (getattr(callback, "__doc__", None) or "").strip().splitlines()[0]
    assert first in section, f"docs/cli.md: hpcscale {' '.join(name)}: {first!r} not in its section"


def test_cli_md_is_the_cli_help() -> None:
    current = _generated_part(CLI_MD.read_text(encoding="utf-8"))
    assert current == render_cli_reference(), (
        "docs/cli.md differs from the CLI's --help; if the CLI change is intended, "
        "regenerate it with: .venv/bin/python tests/docs/test_docs.py --write-cli")


# -- pages that say which test shows a promise -------------------------------------------------

TEST_REF = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_tests_named_in_the_docs_exist(page: Path) -> None:
    """security.md and reliability.md name the test behind each promise: each must exist."""
    for path, name in TEST_REF.findall(page.read_text(encoding="utf-8")):
        source = REPO / path
        assert source.is_file(), f"{page.name}: {path} does not exist"
        if name:
            assert re.search(rf"^def {name}\(", source.read_text(encoding="utf-8"), re.M), (
                f"{page.name}: {path} has no test {name}")


def test_the_promise_pages_name_their_tests() -> None:
    for name in ("security.md", "reliability.md"):
        assert len(TEST_REF.findall((DOCS / name).read_text(encoding="utf-8"))) >= 8, name


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-cli"]:
        write_cli_reference()
        print(f"wrote {CLI_MD}")
    else:
        print("usage: python tests/docs/test_docs.py --write-cli", file=sys.stderr)
        sys.exit(2)
