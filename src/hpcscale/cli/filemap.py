"""``hpcscale map``: a user's function per file, and the ``[map]`` form of ``submit``/``plan``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from hpcscale.cli.options import DryRun, Jobs, Overwrite, Site, parse_jobs, parse_kwargs
from hpcscale.cli.render import OPTIONS, ConsoleReporter, result, say
from hpcscale.config import jobspec
from hpcscale.errors import Interrupted
from hpcscale.run import filemap


class Engine(StrEnum):
    dask = "dask"
    array = "array"


def map_(
    files: Annotated[str, typer.Argument(
        help="Input files: a glob (quote it), e.g. 'scans/*.tif'; ** reaches into subfolders.")],
    output: Annotated[str, typer.Argument(
        help="Output folder: a folder per file, index.zarr and index.csv.")],
    fn: Annotated[str, typer.Option(
        "--fn", help="The function f(path, out_dir, **kwargs) -> dict | None: module:function "
        "or path/to/file.py:function.")],
    kwarg: Annotated[list[str] | None, typer.Option(
        "--kwarg", "-k", help="A keyword argument NAME=VALUE for the function; repeat.")] = None,
    engine: Annotated[Engine, typer.Option(
        help="dask: tasks on the run's dask workers; array: one SLURM job array whose "
        "tasks need no connection back to this node.")] = Engine.dask,
    max_failures: Annotated[int | None, typer.Option(
        "--max-failures", min=1, help="Stop after this many files failed (the rest are "
        "left for a re-run).")] = None,
    site: Site = None, jobs: Jobs = None, overwrite: Overwrite = None, dry_run: DryRun = False,
    print_spec: Annotated[bool, typer.Option(
        "--print-spec", help="Print the equivalent job spec and exit.")] = False,
) -> None:
    """Run a function once per file: a folder of results per file, an index of what happened.

    A failing file does not stop the others: its row in index.csv says why, and
    the command exits 1. Re-run the same command to process only the files that
    failed or were not run.
    Example: hpcscale map 'scans/*.tif' results/ --fn mylab/segment.py:segment --site mysite
    """
    spec = jobspec.map_spec(files, output, fn, kwargs=parse_kwargs(kwarg), engine=str(engine),
                            max_failures=max_failures, overwrite=bool(overwrite))
    if print_spec:
        result(spec.to_toml().rstrip("\n"), {"spec": spec.to_toml()})
        return
    run_map(spec, site, jobs, overwrite, dry_run)


def run_map(spec: jobspec.MapSpec, site: str | None, jobs: str | None,
            overwrite: bool | None, dry_run: bool) -> None:
    """Prepare and run a map spec, as ``map`` and ``submit`` do; exit 1 when files failed."""
    prep = filemap.prepare(spec, site, parse_jobs(jobs), overwrite=overwrite,
                           trust=OPTIONS.trust_profiles)
    if dry_run:
        result("\n".join(prep.lines()), {"plan": prep.lines()})
        return
    say("\n".join(prep.lines()))
    with ConsoleReporter() as reporter:
        try:
            summary = filemap.execute(prep, reporter, keep_logs=True)
        except KeyboardInterrupt as exc:
            raise Interrupted(
                f"interrupted ({exc or 'Ctrl-C'}); the run's jobs were cancelled and nothing "
                f"is left in the queue; the index of what finished is in "
                f"{prep.results.said('index.csv')}: re-run the same command to go on") from exc
    text = (f"{summary.ok:,} of {summary.files:,} files ok"
            + (f" ({summary.resumed:,} from an earlier run)" if summary.resumed else "")
            + f" in {summary.seconds:.1f} s: index {summary.index}, {summary.table}"
            + (f" (run {summary.run_id})" if summary.run_id else ""))
    result(text, summary.__dict__)
    summary.check()  # files failed or not run: one line, exit 1


def register(app: typer.Typer) -> None:
    app.command("map")(map_)
