"""The bad-input table: every reader and every option that takes user input, through the CLI.

Each case is a command line and the files it needs. A refused command exits
with its code, prints exactly one line on stderr holding the case's key
words and no traceback, writes nothing (every file under the test's folder
hashed before and after: inputs unchanged, no output) and makes no run
directory. Inputs made by other tools (netCDF4-python, tifffile, np.save)
are here too; those hpcscale reads give results equal to numpy.

Add a case for every new reader or option, and for every bad input a user
reports.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr

from helpers import MEAN_SPEC, write_profile
from hpcscale import slurm

CUBE = np.arange(240, dtype="float32").reshape(8, 6, 5)
LATIN1 = "# café = 1\n".encode("latin-1")  # not UTF-8

SPEC = MEAN_SPEC


@pytest.fixture(autouse=True)
def _no_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every case runs on this machine; nothing may reach a SLURM controller.
    monkeypatch.setattr(slurm, "available", lambda: False)


class World:
    """The files the cases use, under ``root`` (``data/`` holds the inputs)."""

    def __init__(self, root: Path, sites: Path) -> None:
        self.root, self.sites = root, sites
        self.data = root / "data"
        self.data.mkdir(parents=True)
        arr = zarr.create_array(self.data / "in.zarr", shape=CUBE.shape, chunks=(4, 6, 5),
                                dtype="float32", dimension_names=("z", "y", "x"))
        arr[...] = CUBE
        np.save(self.data / "f.npy", CUBE[0])
        (self.data / "planes").mkdir()
        for i, plane in enumerate(CUBE[:3]):
            tifffile.imwrite(self.data / "planes" / f"p{i}.tif", plane)
        (root / "link").symlink_to(self.data / "in.zarr")

    def p(self, name: str) -> str:
        return str(self.root / name)

    @property
    def zin(self) -> str:
        return str(self.data / "in.zarr")

    def out(self) -> str:
        return str(self.root / "out.zarr")

    def spec(self, body: str, name: str = "job.toml", **fmt: str) -> str:
        path = self.root / name
        text = body.format(**({"inp": self.zin, "out": self.out()} | fmt))
        path.write_text(text, encoding="utf-8")
        return str(path)

    def raw(self, name: str, data: bytes) -> str:
        path = self.root / name
        path.write_bytes(data)
        return str(path)


def _reduce(w: World, inp: str, out: str, *more: str) -> list[str]:
    return ["reduce", inp, out, "--op", "mean", "--axis", "0", "--site", "local", *more]


def _filter(w: World, *more: str) -> list[str]:
    return ["filter", w.zin, w.out(), "--site", "local", *more]


# -- inputs made by other tools, and broken ones -----------------------------------------------


def _object_npy(w: World) -> str:
    np.save(w.data / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return str(w.data / "obj.npy")


def _two_sizes(w: World) -> str:
    (w.data / "sizes").mkdir()
    tifffile.imwrite(w.data / "sizes" / "a1.tif", np.zeros((6, 5), "u2"))
    tifffile.imwrite(w.data / "sizes" / "a2.tif", np.zeros((7, 5), "u2"))
    return str(w.data / "sizes" / "*.tif")


def _truncated_npy(w: World) -> str:
    np.save(w.data / "cut.npy", np.zeros((100, 100)))
    data = (w.data / "cut.npy").read_bytes()
    (w.data / "cut.npy").write_bytes(data[: len(data) // 2])
    return str(w.data / "cut.npy")


def _truncated_hdf5(w: World) -> str:
    xr.Dataset({"t": (("y", "x"), CUBE[0])}).to_netcdf(w.data / "cut.nc", engine="h5netcdf")
    data = (w.data / "cut.nc").read_bytes()
    (w.data / "cut.nc").write_bytes(data[:200])
    return str(w.data / "cut.nc")


def _two_var_nc(w: World) -> str:
    xr.Dataset({"a": (("y", "x"), CUBE[0]), "b": (("y", "x"), CUBE[1])}).to_netcdf(
        w.data / "two.nc", engine="h5netcdf")
    return str(w.data / "two.nc")


def _broken_zarr(w: World) -> str:
    (w.data / "bad.zarr").mkdir()
    (w.data / "bad.zarr" / "zarr.json").write_bytes(b"\xff\xfe{not json")
    return str(w.data / "bad.zarr")


def _text_zarr(w: World) -> str:
    z = zarr.create_array(w.data / "text.zarr", shape=(3,), dtype=str)
    z[...] = np.array(["a", "b", "c"])
    return str(w.data / "text.zarr")


def _latin_profile(w: World) -> str:
    write_profile(w.sites, "latin", "")
    (w.sites / "latin.toml").write_bytes(b'[slurm]\npartition = "d\xe9bug"\n')
    return "latin"


def _run_with(w: World, name: str, data: bytes) -> str:
    """A run directory of a run on ``w.zin`` whose ``name`` holds ``data``."""
    run_id = "20260101-120000-abcdef"
    rd = Path(os.environ["HPCSCALE_RUNS_DIR"]) / run_id
    rd.mkdir(parents=True)
    (rd / "state.json").write_text(json.dumps({"run_id": run_id, "state": "done"}))
    (rd / "jobspec.toml").write_text(SPEC.format(inp=w.zin, out=w.out()))
    (rd / name).write_bytes(data)
    return run_id


def _map(w: World, *more: str) -> list[str]:
    return ["map-blocks", w.zin, w.out(), "--site", "local", *more]


def _fns(w: World) -> str:
    """A file of user functions beside the world (outside the hashed folder: loading it
    may leave Python's bytecode cache there)."""
    path = w.root.parent / "fns.py"
    path.write_text("def no_args():\n    pass\n\n\ndef box(a, size=3):\n    return a\n")
    return str(path)


MAP_SPEC = """
[input]
path = "{inp}"
[[steps]]
map = "{fn}"
{more}
[output]
path = "{out}"
"""


def _fn(w: World, text: str = "def f(path, out_dir):\n    return None\n") -> str:
    """A user function file ``fn.py`` beside the world (outside the hashed folder, as
    ``_fns``); its ``--fn``."""
    (w.root.parent / "fn.py").write_text(text, encoding="utf-8")
    return str(w.root.parent / "fn.py") + ":f"


def _filemap(w: World, files: str, out: str, *more: str, fn: str | None = None) -> list[str]:
    return ["map", files, out, "--fn", fn or _fn(w), "--site", "local", *more]


def _made_by_another_function(w: World) -> str:
    """A map output whose rows another version of the function made."""
    own = w.root / "res" / ".hpcscale"
    own.mkdir(parents=True)
    (own / "map.json").write_text(json.dumps({
        "function": {"function": _fn(w), "digest": "0" * 64}, "kwargs": {}}))
    return str(w.root / "res")


FILEMAP_SPEC = """
[map]
files = "{files}"
function = "{fn}"
output = "{out}"
"""


# (id, argv from the world, exit code, key words of the one line)
Case = tuple[str, Callable[[World], list[str]], int, tuple[str, ...]]
CASES: list[Case] = [
    # defect 1: an output that is an input, inside one, or holds one
    ("output is the input", lambda w: _reduce(w, w.zin, w.zin), 2,
     ("in.zarr", "is the input")),
    ("output inside the input", lambda w: _reduce(w, w.zin, w.zin + "/sub"), 2,
     ("in.zarr/sub", "inside the input")),
    ("output inside the input via ..", lambda w: _reduce(
        w, w.zin, w.p("data/planes/../in.zarr/sub")), 2, ("inside the input",)),
    ("output inside the input via a symlink", lambda w: _reduce(w, w.zin, w.p("link/sub")), 2,
     ("link/sub", "inside the input")),
    ("input through a symlink, output inside it", lambda w: _reduce(
        w, w.p("link"), w.zin + "/sub"), 2, ("inside the input",)),
    ("output holds the input", lambda w: _reduce(w, w.zin, str(w.data)), 2,
     ("holds the input",)),
    ("output is the npy input", lambda w: _reduce(w, str(w.data / "f.npy"),
                                                  str(w.data / "f.npy")), 2, ("is the input",)),
    ("filter output inside the input", lambda w: [
        "filter", w.zin, w.zin + "/g", "--filter", "gaussian", "--sigma", "1", "--site",
        "local"], 2, ("inside the input",)),
    ("output matched by the input glob", lambda w: _reduce(
        w, str(w.data / "planes" / "*.tif"), str(w.data / "planes" / "mean.tif")), 2,
     ("mean.tif", "matched by the input")),
    ("output holds the glob's files", lambda w: _reduce(
        w, str(w.data / "planes" / "*.tif"), str(w.data / "planes")), 2, ("holds the input",)),
    ("submit: spec output inside its input", lambda w: [
        "submit", w.spec(SPEC, out=w.zin + "/mean.zarr"), "--site", "local"], 2,
     ("inside the input",)),
    ("sbatch -o inside the input", lambda w: [
        "sbatch", w.spec(SPEC), "--site", "local", "-o", w.zin + "/run.sbatch"], 2,
     ("run.sbatch", "inside the input")),
    ("sbatch --summary-file inside the input", lambda w: [
        "sbatch", w.spec(SPEC), "--site", "local", "--summary-file", w.zin + "/s.json"], 2,
     ("s.json", "inside the input")),
    ("preview PNG inside the input", lambda w: [
        "preview", w.zin, "-o", w.zin + "/p.png"], 2, ("p.png", "inside the input")),
    ("report --png inside the run's input", lambda w: [
        "report", _run_with(w, "summary.json", b"{}"), "--png", w.zin + "/r.png"], 2,
     ("r.png", "inside the input")),
    ("preview PNG inside the compared file", lambda w: [
        "preview", str(w.data / "f.npy"), "--compare", w.zin, "--slice", "z=0",
        "-o", w.zin + "/p.png"], 2, ("p.png", "inside the input")),
    # defect 2: files that are not UTF-8
    ("job spec not UTF-8 (submit)", lambda w: ["submit", w.raw("l1.toml", LATIN1),
                                               "--site", "local"], 2,
     ("job spec", "l1.toml", "UTF-8")),
    ("job spec not UTF-8 (plan)", lambda w: ["plan", w.raw("l1.toml", LATIN1),
                                             "--site", "local"], 2, ("l1.toml", "UTF-8")),
    ("job spec not UTF-8 (sbatch)", lambda w: ["sbatch", w.raw("l1.toml", LATIN1),
                                               "--site", "local"], 2, ("l1.toml", "UTF-8")),
    ("profile not UTF-8 (script)", lambda w: ["script", "--site", _latin_profile(w)], 2,
     ("profile", "latin.toml", "UTF-8")),
    ("profile not UTF-8 (site show)", lambda w: ["site", "show", _latin_profile(w)], 2,
     ("latin.toml", "UTF-8")),
    ("profile not UTF-8 (reduce)", lambda w: [
        *_reduce(w, w.zin, w.out()), "--site", _latin_profile(w)], 2, ("latin.toml", "UTF-8")),
    # defect 3: [run] walltime
    ("spec walltime forever", lambda w: ["plan", w.spec(SPEC + '[run]\nwalltime = "forever"\n'),
                                         "--site", "local"], 2,
     ("run.walltime", "forever", "HH:MM:SS")),
    ("spec walltime zero", lambda w: ["plan", w.spec(SPEC + "[run]\nwalltime = 0\n"),
                                      "--site", "local"], 2, ("run.walltime", "positive")),
    # readers
    ("missing input", lambda w: _reduce(w, w.p("nope.zarr"), w.out()), 2,
     ("nope.zarr", "no such file")),
    ("glob matching nothing", lambda w: _reduce(w, w.p("*.tif"), w.out()), 2,
     ("*.tif", "matches no files")),
    ("text file input", lambda w: _reduce(w, w.raw("notes.txt", b"hello"), w.out()), 2,
     ("notes.txt", "unknown format")),
    ("folder that is not a store", lambda w: _reduce(w, str(w.data / "planes"), w.out()), 2,
     ("planes", "not a Zarr store")),
    ("object-dtype npy (np.save allow_pickle)", lambda w: _reduce(w, _object_npy(w), w.out()),
     2, ("obj.npy", "cannot read as .npy")),
    ("truncated npy", lambda w: _reduce(w, _truncated_npy(w), w.out()), 2,
     ("cut.npy", "cannot read as .npy")),
    ("truncated NetCDF4", lambda w: _reduce(w, _truncated_hdf5(w), w.out()), 2,
     ("cut.nc", "cannot read")),
    ("glob of images of two sizes", lambda w: _reduce(w, _two_sizes(w), w.out()), 2,
     ("a2.tif", "all images must match")),
    ("zarr.json not UTF-8", lambda w: _reduce(w, _broken_zarr(w), w.out()), 2,
     ("bad.zarr", "cannot read as Zarr")),
    ("text array", lambda w: _reduce(w, _text_zarr(w), w.out()), 2,
     ("must be bool, integer or float",)),
    ("NetCDF with two variables, no --var", lambda w: _reduce(w, _two_var_nc(w), w.out()), 2,
     ("two.nc", "choose one with --var")),
    ("--var on a .npy", lambda w: _reduce(w, str(w.data / "f.npy"), w.out(), "--var", "a"), 2,
     ("--var a", "applies only")),
    ("--var unknown in a NetCDF", lambda w: _reduce(w, _two_var_nc(w), w.out(), "--var", "zz"),
     2, ("no variable 'zz'",)),
    # options of reduce and filter
    ("--axis out of range", lambda w: ["reduce", w.zin, w.out(), "--axis", "7", "--site",
                                       "local"], 2, ("7",)),
    ("--axis unknown name", lambda w: ["reduce", w.zin, w.out(), "--axis", "time", "--site",
                                       "local"], 2, ("time",)),
    ("--q out of [0, 1]", lambda w: ["reduce", w.zin, w.out(), "--op", "quantile", "--q", "2",
                                     "--axis", "0", "--site", "local"], 2, ("q",)),
    ("--range reversed", lambda w: ["reduce", w.zin, w.out(), "--op", "histogram", "--bins",
                                    "4", "--range", "5", "1", "--site", "local"], 2, ("range",)),
    ("--bins zero", lambda w: ["reduce", w.zin, w.out(), "--op", "histogram", "--bins", "0",
                               "--range", "0", "1", "--site", "local"], 2, ("bins",)),
    ("--jobs zero", lambda w: _reduce(w, w.zin, w.out(), "--jobs", "0"), 2, ("--jobs '0'",)),
    ("--sigma negative", lambda w: _filter(w, "--filter", "gaussian", "--sigma", "-1"), 2,
     ("sigma",)),
    ("--size zero", lambda w: _filter(w, "--filter", "median", "--size", "0"), 2, ("size",)),
    ("--percentile 150", lambda w: _filter(w, "--filter", "percentile", "--size", "3",
                                           "--percentile", "150"), 2, ("percentile",)),
    ("--truncate negative", lambda w: _filter(w, "--filter", "gaussian", "--sigma", "1",
                                              "--truncate", "-1"), 2, ("truncate",)),
    ("output folder of other files", lambda w: _reduce(w, w.zin, str(w.data / "planes")), 2,
     ("planes",)),
    ("output parent missing", lambda w: _reduce(w, w.zin, w.p("no/dir/o.zarr")), 2,
     ("o.zarr", "does not exist")),
    # job specs
    ("spec TOML syntax", lambda w: ["submit", w.spec("[input\n"), "--site", "local"], 2,
     ("TOML syntax error",)),
    ("spec unknown key", lambda w: ["submit", w.spec(SPEC + "colour = 1\n"), "--site", "local"],
     2, ("colour", "valid keys")),
    ("spec zarr_format 4", lambda w: ["submit", w.spec(SPEC + "zarr_format = 4\n"), "--site",
                                      "local"], 2, ("zarr_format",)),
    ("spec jobs 0", lambda w: ["plan", w.spec(SPEC + "[run]\njobs = 0\n"), "--site", "local"],
     2, ("run.jobs",)),
    ("spec unknown site", lambda w: ["plan", w.spec(SPEC + '[run]\nsite = "nope"\n')], 2,
     ("nope", "not a known profile")),
    # preview, sbatch, runs
    ("preview --slice without =", lambda w: ["preview", w.zin, "--slice", "z5", "-o",
                                             w.p("p.png")], 2, ("z5",)),
    ("preview --slice out of range", lambda w: ["preview", w.zin, "--slice", "z=99", "-o",
                                                w.p("p.png")], 2, ("99",)),
    ("preview --max unknown dim", lambda w: ["preview", w.zin, "--max", "t", "-o",
                                             w.p("p.png")], 2, ("t",)),
    ("preview output not PNG", lambda w: ["preview", w.zin, "-o", w.p("p.txt")], 2,
     ("p.txt", "PNG")),
    ("sbatch --mail-type bogus", lambda w: ["sbatch", w.spec(SPEC), "--site", "local",
                                            "--mail-type", "BOGUS"], 2, ("BOGUS",)),
    ("sbatch --mail-user without --mail-type", lambda w: [
        "sbatch", w.spec(SPEC), "--site", "local", "--mail-user", "a@b.c"], 2,
     ("--mail-type",)),
    ("status of an unknown run", lambda w: ["status", "nosuchrun"], 2, ("nosuchrun",)),
    # hpcscale map: a function per file
    ("map: glob matching nothing", lambda w: _filemap(w, w.p("nothing/*.json"), w.p("res")), 2,
     ("FILES", "nothing/*.json", "matches no file")),
    ("map: module not importable", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), fn="no_such_module_xyz:f"), 2,
     ("--fn", "no_such_module_xyz", "does not import")),
    ("map: no such function", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), fn="json:nope"), 2,
     ("--fn", "has no function 'nope'")),
    ("map: not a function", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), fn="json:__name__"), 2,
     ("--fn", "is a str, not a function")),
    ("map: --fn without a colon", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), fn="json"), 2,
     ("--fn", "module:function")),
    ("map: function file missing", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), fn=w.p("nope.py") + ":f"), 2,
     ("nope.py", "no such file")),
    ("map: bad signature", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), fn=_fn(w, "def f(path):\n    pass\n")), 2,
     ("--fn", "cannot be called as f(path, out_dir, **kwargs)")),
    ("map: a kwarg the function does not take", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), "--kwarg", "sigma=2"), 2,
     ("cannot be called", "sigma")),
    ("map: --kwarg without =", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), "--kwarg", "sigma"), 2,
     ("--kwarg 'sigma'", "NAME=VALUE")),
    ("map: output is an input file", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("data/planes/p0.tif")), 2,
     ("p0.tif", "matched by the input")),
    ("map: output inside an input", lambda w: _filemap(
        w, w.p("data/*.zarr"), w.p("data/in.zarr/res")), 2, ("in.zarr/res", "inside the input")),
    ("map: output holds the inputs", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("data/planes")), 2, ("holds the input",)),
    ("map: output inside a recursive glob", lambda w: _filemap(
        w, w.p("data/**/*.tif"), w.p("data/res")), 2, ("data/res", "matched by the input")),
    ("map: output a folder of other files", lambda w: _filemap(
        w, w.p("data/*.npy"), w.p("data/planes")), 2,
     ("data/planes", "not the output of `hpcscale map`")),
    ("map: output an existing file", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("data/f.npy")), 2, ("f.npy", "not a folder")),
    ("map: output parent missing", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("no/dir/res")), 2, ("no/dir", "does not exist")),
    ("map: changed function on resume", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), _made_by_another_function(w)), 2,
     ("res", "it changed", "--overwrite")),
    ("map: --max-failures 0", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), "--max-failures", "0"), 2,
     ("--max-failures",)),
    ("map: --max-failures not a number", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), "--max-failures", "few"), 2,
     ("--max-failures", "valid integer")),
    ("map: unknown engine", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), "--engine", "ray"), 2, ("--engine", "'ray'")),
    ("map: engine array on a local site", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), "--engine", "array"), 2,
     ("engine array", "local profile")),
    ("map: --jobs zero", lambda w: _filemap(
        w, w.p("data/planes/*.tif"), w.p("res"), "--jobs", "0"), 2, ("--jobs '0'",)),
    ("map spec with [input] too", lambda w: ["submit", w.spec(
        SPEC + FILEMAP_SPEC, files="x/*.tif", fn="fn.py:f")], 2, ("has [map] and [input]",)),
    ("map spec unknown key", lambda w: ["submit", w.spec(
        FILEMAP_SPEC + "colour = 1\n", files="x", fn="fn.py:f", out="res"), "--site", "local"], 2,
     ("map.colour", "valid keys", "files, function")),
    ("map spec unknown engine", lambda w: ["plan", w.spec(
        FILEMAP_SPEC + 'engine = "ray"\n', files="x", fn="fn.py:f", out="res"), "--site",
        "local"], 2, ("map.engine",)),
    ("map spec max_failures 0", lambda w: ["plan", w.spec(
        FILEMAP_SPEC + "max_failures = 0\n", files="x", fn="fn.py:f", out="res"), "--site",
        "local"], 2, ("map.max_failures",)),
    ("map spec without a function", lambda w: ["submit", w.spec(
        '[map]\nfiles = "x"\noutput = "res"\n')], 2, ("missing required key 'map.function'",)),
    ("map spec function file beside it, missing", lambda w: ["submit", w.spec(
        FILEMAP_SPEC, files=w.p("data/planes/*.tif"), fn="lab/seg.py:f", out="res"), "--site",
        "local"], 2, ("[map] function", "lab/seg.py", "no such file")),
    ("map spec to sbatch with --site local", lambda w: ["sbatch", w.spec(
        FILEMAP_SPEC, files=w.p("data/planes/*.tif"), fn=_fn(w), out=w.p("res")), "--site",
        "local"], 2, ("local profile",)),
    # options click checks before hpcscale sees them: one line too, naming the option
    ("--zarr-format 4", lambda w: _reduce(w, w.zin, w.out(), "--zarr-format", "4"), 2,
     ("--zarr-format", "less than or equal to 3", "hpcscale reduce --help")),
    ("--filter unknown", lambda w: _filter(w, "--filter", "blur"), 2, ("--filter", "'blur'")),
    ("--mode unknown", lambda w: _filter(w, "--filter", "gaussian", "--sigma", "1", "--mode",
                                         "circular"), 2, ("--mode", "'circular'")),
    ("--op unknown", lambda w: ["reduce", w.zin, w.out(), "--op", "avg"], 2, ("--op", "'avg'")),
    ("--sigma not a number", lambda w: _filter(w, "--filter", "gaussian", "--sigma", "two"), 2,
     ("--sigma", "valid number")),
    ("--range with one value", lambda w: ["reduce", w.zin, w.out(), "--op", "histogram",
                                          "--range", "1"], 2, ("--range",)),
    # map-blocks and map steps: the function, its arguments, core, depth, dtype, boundary
    ("--fn not importable", lambda w: _map(w, "--fn", "no_such_module_xyz:f"), 2,
     ("step 1", "module 'no_such_module_xyz' does not import")),
    ("--fn not a function", lambda w: _map(w, "--fn", "numpy:pi"), 2,
     ("'numpy:pi' is a float, not a function",)),
    ("--fn no such function", lambda w: _map(w, "--fn", "numpy:no_such_fn"), 2,
     ("'numpy' has no function 'no_such_fn'",)),
    ("--fn without a colon", lambda w: _map(w, "--fn", "sobel"), 2,
     ("'sobel' is not a function", "module:function")),
    ("--fn file missing", lambda w: _map(w, "--fn", w.p("nope.py") + ":f"), 2,
     ("nope.py", "no such file")),
    ("--fn takes no block", lambda w: _map(w, "--fn", _fns(w) + ":no_args"), 2,
     ("fns.py:no_args cannot be called as f(block, **kwargs)",)),
    ("--kwarg the function does not take", lambda w: _map(
        w, "--fn", _fns(w) + ":box", "--kwarg", "colour=1"), 2,
     ("cannot be called as f(block, **kwargs)", "colour")),
    ("--kwarg without =", lambda w: _map(w, "--fn", "numpy:negative", "--kwarg", "sigma"), 2,
     ("--kwarg 'sigma'", "NAME=VALUE")),
    ("--core unknown dim", lambda w: _map(w, "--fn", "numpy:negative", "--core", "t"), 2,
     ("core 't' is not a dim; dims are (z, y, x)",)),
    ("--depth negative", lambda w: _map(w, "--fn", "numpy:negative", "--depth", "z=-1"), 2,
     ("depth z = -1", ">= 0")),
    ("--depth on a core dim", lambda w: _map(w, "--fn", "numpy:negative", "--core", "y",
                                             "--core", "x", "--depth", "x=1"), 2,
     ("depth 'x' = 1", "'x' is a core dim")),
    ("--depth not a number", lambda w: _map(w, "--fn", "numpy:negative", "--depth", "z=one"),
     2, ("--depth 'z=one'", "not a whole number")),
    ("--dtype unknown", lambda w: _map(w, "--fn", "numpy:negative", "--dtype", "float33"), 2,
     ("dtype 'float33' is not a numeric numpy dtype",)),
    ("--boundary unknown", lambda w: _map(w, "--fn", "numpy:negative", "--boundary", "wrap"),
     2, ("boundary must be one of none, reflect, nearest, periodic", "'wrap'")),
    ("spec map step: no such file", lambda w: [
        "submit", w.spec(MAP_SPEC, fn="nofile.py:f", more=""), "--site", "local"], 2,
     ("job spec", "step 1 (nofile.py:f)", "no such file")),
    ("spec map step: unknown key", lambda w: [
        "submit", w.spec(MAP_SPEC, fn="numpy:negative", more="shape = 3"), "--site", "local"],
     2, ("unknown key 'shape'; valid keys: map, kwargs, core, depth, dtype, boundary",)),
    ("unknown option", lambda w: ["submit", "--colour"], 2, ("No such option: --colour",)),
    ("missing argument", lambda w: ["reduce", w.zin], 2, ("Missing argument", "out")),
]


def _hashes(*roots: Path) -> dict[str, str]:
    found = {}
    for root in roots:
        for p in sorted(root.rglob("*")) if root.exists() else []:
            if p.is_symlink():
                found[str(p)] = "link:" + os.readlink(p)
            elif p.is_file():
                found[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                found[str(p)] = "dir"
    return found


@pytest.mark.parametrize(("label", "argv", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(label: str, argv: Callable[[World], list[str]], code: int,
                   words: tuple[str, ...], cli: Any, tmp_path: Path, user_sites: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    w = World(tmp_path / "w", user_sites)
    args = argv(w)
    runs = Path(os.environ["HPCSCALE_RUNS_DIR"])
    before = _hashes(w.root, runs)
    r = cli(*args)
    assert r.code == code, r
    assert "Traceback" not in r.out + r.err, r
    assert len(r.err.strip().splitlines()) == 1, r.err
    for word in words:
        assert word in r.err, (word, r)
    assert _hashes(w.root, runs) == before, "a refused command changed files"
    assert not (tmp_path / "w" / "out.zarr").exists()


def test_the_table_is_large() -> None:
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


# -- good inputs made by other tools: results equal to numpy -------------------------------------


def _result(path: Path) -> np.ndarray:
    with xr.open_zarr(path) as ds:
        return np.asarray(next(iter(ds.data_vars.values())).values)


def test_cf_netcdf_by_netcdf4_packed_int16(cli: Any, tmp_path: Path) -> None:
    """netCDF4-python's packed int16 (scale_factor, add_offset, _FillValue) reads as the
    unpacked values, the fill value missing: a mean equal to numpy's nanmean."""
    netCDF4 = pytest.importorskip("netCDF4")
    rng = np.random.default_rng(3)
    packed = rng.integers(-30000, 30000, size=(6, 4, 5)).astype("i2")
    packed[2, 1, 3] = packed[0, 0, 0] = -32767
    scale, offset = 0.01, 273.15
    path = tmp_path / "cf.nc"
    with netCDF4.Dataset(path, "w") as nc:
        for name, n in zip(("time", "lat", "lon"), packed.shape, strict=True):
            nc.createDimension(name, n)
        v = nc.createVariable("t2m", "i2", ("time", "lat", "lon"), fill_value=-32767)
        v.scale_factor, v.add_offset, v.units = scale, offset, "K"
        v.set_auto_maskandscale(False)
        v[:] = packed
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    r = cli("reduce", str(path), str(tmp_path / "m.zarr"), "--op", "nanmean", "--axis", "time",
            "--site", "local", "--jobs", "1")
    assert r.code == 0, r
    unpacked = np.where(packed == -32767, np.nan, packed * scale + offset)
    np.testing.assert_allclose(_result(tmp_path / "m.zarr"), np.nanmean(unpacked, axis=0),
                               rtol=1e-6)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def test_planar_rgb_tiff(cli: Any, tmp_path: Path) -> None:
    """A planar (separate) RGB TIFF is a (sample, y, x) stack: its mean over the samples."""
    rgb = np.random.default_rng(4).integers(0, 255, size=(3, 16, 12)).astype("u1")
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb", planarconfig="separate")
    r = cli("reduce", str(path), str(tmp_path / "m.zarr"), "--op", "mean", "--axis", "0",
            "--site", "local", "--jobs", "1")
    assert r.code == 0, r
    np.testing.assert_allclose(_result(tmp_path / "m.zarr"), rgb.mean(axis=0), rtol=1e-12)


def test_output_beside_a_globs_files_is_allowed(cli: Any, tmp_path: Path) -> None:
    """Only outputs the glob would match are refused, not the glob's folder."""
    (tmp_path / "planes").mkdir()
    for i, plane in enumerate(CUBE[:3]):
        tifffile.imwrite(tmp_path / "planes" / f"p{i}.tif", plane)
    r = cli("reduce", str(tmp_path / "planes" / "*.tif"), str(tmp_path / "planes" / "m.zarr"),
            "--op", "max", "--axis", "0", "--site", "local", "--jobs", "1")
    assert r.code == 0, r
    np.testing.assert_array_equal(_result(tmp_path / "planes" / "m.zarr"), CUBE[:3].max(axis=0))


# -- defect 4: a corrupt input chunk names the input, the chunk, and what was kept ---------------


def _corrupt_run(cli: Any, inp: str, out: Path) -> str:
    r = cli("reduce", inp, str(out), "--op", "sum", "--axis", "0", "--site", "local",
            "--jobs", "1")
    assert r.code == 1, r
    assert "Traceback" not in r.out + r.err
    # the plan and progress go to stderr too; the error is one line, the last
    errors = [ln for ln in r.err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.err
    assert r.err.strip().splitlines()[-1] == errors[0]
    for word in ("unfinished", "re-run", "resume", str(out)):
        assert word in errors[0], (word, errors[0])
    from hpcscale.io.output import is_complete, read_marker

    assert read_marker(out) is not None
    assert not is_complete(out)
    return errors[0]


@pytest.mark.parametrize("fmt", [2, 3])
def test_truncated_chunk_of_a_zarr_array(cli: Any, tmp_path: Path, fmt: int) -> None:
    path = tmp_path / "in.zarr"
    z = zarr.create_array(path, shape=(8, 64, 64), chunks=(2, 64, 64), dtype="float64",
                          zarr_format=fmt)  # type: ignore[arg-type]
    z[...] = np.random.default_rng(5).standard_normal((8, 64, 64))
    chunk = path / ("c/2/0/0" if fmt == 3 else "2.0.0")
    chunk.write_bytes(chunk.read_bytes()[:40])
    r = _corrupt_run(cli, str(path), tmp_path / "out.zarr")
    key = "c/2/0/0" if fmt == 3 else "2.0.0"
    assert f"input {path}" in r, r
    assert f"chunk {key}" in r, r


def test_truncated_chunk_of_an_xarray_store(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "g.zarr"
    data = np.random.default_rng(6).standard_normal((8, 32, 32))
    xr.Dataset({"v": (("t", "y", "x"), data)}).to_zarr(
        path, zarr_format=3, consolidated=False, encoding={"v": {"chunks": (2, 32, 32)}})
    chunk = path / "v" / "c" / "3" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:40])
    r = _corrupt_run(cli, str(path), tmp_path / "out.zarr")
    assert f"input {path}" in r, r
    assert "v/c/3/0/0" in r, r


def test_undecodable_file_of_a_glob(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "planes").mkdir()
    for i, plane in enumerate(CUBE[:4]):
        tifffile.imwrite(tmp_path / "planes" / f"p{i}.tif", plane)
    bad = tmp_path / "planes" / "p2.tif"
    bad.write_bytes(bad.read_bytes()[:60])
    pattern = str(tmp_path / "planes" / "*.tif")
    r = _corrupt_run(cli, pattern, tmp_path / "out.zarr")
    assert f"input {pattern}" in r, r
    assert str(bad) in r, r


# -- run files hpcscale reads back: damaged ones never give a traceback --------------------------


@pytest.mark.parametrize("data", [b"\xff\xfe\x00 not UTF-8 {", b"[1, 2]"],
                         ids=["not-utf8", "not-an-object"])
@pytest.mark.parametrize("name", ["state.json", "summary.json", "timeline.jsonl", "plan.json"])
@pytest.mark.parametrize("command", ["status", "report", "runs"])
def test_damaged_run_file_is_tolerated(cli: Any, tmp_path: Path, user_sites: Path,
                                       name: str, command: str, data: bytes) -> None:
    w = World(tmp_path / "w", user_sites)
    run_id = _run_with(w, name, data)
    r = cli(command, run_id) if command != "runs" else cli(command)
    assert "Traceback" not in r.out + r.err, r
    assert r.code in (0, 1, 2), r
    assert len(r.err.strip().splitlines()) <= 1, r.err


def test_resume_with_a_damaged_manifest(cli: Any, tmp_path: Path, user_sites: Path) -> None:
    """An unfinished output whose manifest is not UTF-8: its blocks are computed again."""
    w = World(tmp_path / "w", user_sites)
    out = Path(w.out())
    args = _reduce(w, w.zin, str(out), "--jobs", "1")
    assert cli(*args).code == 0
    from hpcscale.io.manifest import MANIFEST
    from hpcscale.io.output import MARKER_KEY

    group = zarr.open_group(out, mode="r+", use_consolidated=False)
    marker = dict(group.attrs[MARKER_KEY])
    group.attrs[MARKER_KEY] = marker | {"complete": False}
    (out / MANIFEST).write_bytes(b"\xff\xfe[0, 0]\n")
    r = cli(*args)
    assert r.code == 0, r
    np.testing.assert_allclose(_result(out), CUBE.mean(axis=0))


def test_undecodable_png_of_a_glob(cli: Any, tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "pngs").mkdir()
    for i in range(4):
        Image.fromarray((CUBE[i] * 0 + i * 10).astype("u1")).save(tmp_path / "pngs" / f"i{i}.png")
    bad = tmp_path / "pngs" / "i2.png"
    bad.write_bytes(bad.read_bytes()[:50])
    pattern = str(tmp_path / "pngs" / "*.png")
    r = _corrupt_run(cli, pattern, tmp_path / "out.zarr")
    assert f"input {pattern}" in r, r
    assert str(bad) in r, r


def test_rerun_after_fixing_a_corrupt_chunk_resumes(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "in.zarr"
    data = np.random.default_rng(8).standard_normal((8, 16, 16))
    z = zarr.create_array(path, shape=data.shape, chunks=(2, 16, 16), dtype="float64")
    z[...] = data
    chunk = path / "c" / "3" / "0" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(good[:40])
    out = tmp_path / "out.zarr"
    _corrupt_run(cli, str(path), out)
    chunk.write_bytes(good)
    r = cli("reduce", str(path), str(out), "--op", "sum", "--axis", "0", "--site", "local",
            "--jobs", "1")
    assert r.code == 0, r
    assert "resume" in r.out + r.err
    np.testing.assert_allclose(_result(out), data.sum(axis=0))
