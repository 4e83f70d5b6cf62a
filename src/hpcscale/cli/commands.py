"""Commands that plan and run work: script, plan, submit, reduce, filter, map-blocks, demo."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

import typer

from hpcscale import backends, run, sizing, units
from hpcscale import demo as sample
from hpcscale.cli.filemap import run_map
from hpcscale.cli.options import (
    DryRun,
    Jobs,
    Overwrite,
    Site,
    parse_jobs,
    parse_kwargs,
    parse_value,
)
from hpcscale.cli.render import OPTIONS, ConsoleReporter, result, say
from hpcscale.config import jobspec, profiles
from hpcscale.errors import Interrupted, ProfileError, UsageError
from hpcscale.ops import BOUNDARIES, FILTERS, MODES, REDUCTIONS


def script(site: Site = None) -> None:
    """Print the exact sbatch script each worker job is submitted with.

    Rendered by dask-jobqueue from the profile; nothing is submitted.
    Example: hpcscale script --site testbed
    """
    res = profiles.load(run.choose_site(site), trust=OPTIONS.trust_profiles)
    if res.profile.kind != "slurm":
        raise ProfileError(f"site {res.profile.name} is a local profile: it submits no jobs")
    text = backends.job_script(res.profile)
    result(text.rstrip("\n"), {"site": res.profile.name, "script": text})


def _plan_data(plan: sizing.Plan) -> dict[str, Any]:
    """``plan --json``: the plan's lines and, with the same numbers, what it predicts."""
    forecast = dataclasses.asdict(plan.forecast) if plan.forecast is not None else None
    return {"plan": plan.lines(), "site": plan.site, "jobs": plan.jobs,
            "walltime": plan.walltime, "prediction": forecast}


def _execute(prep: run.Prepared, dry_run: bool) -> None:
    if dry_run:
        result("\n".join(prep.plan.lines()), _plan_data(prep.plan))
        return
    say("\n".join(prep.plan.lines()))
    with ConsoleReporter() as reporter:
        summary = _interruptible(prep, reporter)
    text = (f"done in {summary.seconds:.1f} s: {summary.output} "
            f"({summary.workers} workers on {len(summary.nodes)} node(s), "
            f"{len(summary.jobs)} SLURM job(s); run {summary.run_id})")
    result(text, summary.__dict__)


def _interruptible(prep: run.Prepared, reporter: ConsoleReporter) -> run.Summary:
    try:
        return run.execute(prep, reporter, keep_logs=True)
    except KeyboardInterrupt as exc:
        raise Interrupted(f"interrupted ({exc or 'Ctrl-C'}); the run's jobs were cancelled "
                          "and nothing is left in the queue") from exc


def submit(
    spec: Annotated[Path, typer.Argument(help="Job spec (TOML), e.g. jobs/climate-mean.toml.")],
    site: Site = None, jobs: Jobs = None, overwrite: Overwrite = None, dry_run: DryRun = False,
) -> None:
    """Run a job spec: start the site's cluster, compute, write Zarr, cancel the jobs.

    A [map] job spec runs its function once per file, as `hpcscale map` does.
    Example: hpcscale submit jobs/climate-mean.toml --site testbed --jobs 3
    """
    loaded = jobspec.load_any(spec)
    if isinstance(loaded, jobspec.MapSpec):
        run_map(loaded, site, jobs, overwrite, dry_run)
        return
    prep = run.prepare(loaded, site, parse_jobs(jobs), overwrite=overwrite,
                       trust=OPTIONS.trust_profiles)
    _execute(prep, dry_run)


def plan(
    spec: Annotated[Path, typer.Argument(help="Job spec (TOML).")],
    site: Site = None, jobs: Jobs = None,
) -> None:
    """Print the plan for a job spec (jobs, memory, decisions); submits nothing.

    Example: hpcscale plan jobs/climate-mean.toml --site testbed
    """
    loaded = jobspec.load_any(spec)
    if isinstance(loaded, jobspec.MapSpec):
        run_map(loaded, site, jobs, None, dry_run=True)
        return
    prep = run.prepare(loaded, site, parse_jobs(jobs), trust=OPTIONS.trust_profiles)
    _execute(prep, dry_run=True)


def calibrate(
    spec: Annotated[Path, typer.Argument(help="Job spec (TOML).")],
    site: Site = None,
    chunks: Annotated[int, typer.Option(min=1, help="Input chunks to time (after one that "
                                                    "warms up).")] = run.calibration.CHUNKS,
) -> None:
    """Time a job's steps on its first input chunks here, for plan's first prediction.

    One thread on this machine, not the site's nodes; the figure is stored in your
    state directory and used for the site until runs of the same steps there finish.
    Example: hpcscale calibrate jobs/climate-mean.toml --site local
    """
    loaded = jobspec.load(spec)
    done = run.calibrate(loaded, site, chunks=chunks, trust=OPTIONS.trust_profiles)
    text = (f"calibrated {spec} for site {done.site}: {done.chunks} chunk(s), "
            f"{units.format_bytes(done.bytes_in)} in {done.seconds:.2f} s on {done.host}, "
            f"1 thread: {units.format_bytes(int(done.rate))}/s per thread; stored in {done.path}")
    result(text, {"site": done.site, "chunks": done.chunks, "bytes_in": done.bytes_in,
                  "seconds": done.seconds, "rate": done.rate, "host": done.host,
                  "path": str(done.path)})


def _choices(name: str, values: Sequence[str]) -> type[StrEnum]:
    """A StrEnum of ``values`` for Typer; a member whose name str has (``count``) gets a _."""
    members = [(v + "_" if hasattr(str, v) else v, v) for v in values]
    return StrEnum(name, members)  # type: ignore[return-value]  # the functional API: a class


# The choices come from the ops registry: a new reduction or filter is a choice here too.
# (mypy sees plain strings: members are str, and the commands use them as such.)
if TYPE_CHECKING:
    ReduceOp: TypeAlias = str
    FilterName: TypeAlias = str
    Mode: TypeAlias = str
else:
    ReduceOp = _choices("ReduceOp", [*REDUCTIONS, "histogram"])
    FilterName = _choices("FilterName", FILTERS)
    Mode = _choices("Mode", MODES)


In = Annotated[str, typer.Argument(help="Input: Zarr, NetCDF, TIFF, image glob or .npy.")]
Out = Annotated[str, typer.Argument(help="Output Zarr store.")]
Var = Annotated[str | None, typer.Option(help="Array (variable) inside the input.")]
Axis = Annotated[list[str] | None, typer.Option("--axis", "-a",
                                                help="Axis name or number; repeat for several.")]
PrintSpec = Annotated[bool, typer.Option("--print-spec",
                                         help="Print the equivalent job spec and exit.")]
ZarrFormat = Annotated[int, typer.Option("--zarr-format", min=2, max=3,
                                         help="Zarr format of the output (2 or 3).")]


def _axes(values: list[str] | None) -> list[int | str] | None:
    if not values:
        return None
    return [int(v) if v.lstrip("-").isdigit() else v for v in values]


def _one_off(inp: str, out: str, step: dict[str, Any], var: str | None,
             overwrite: bool | None, site: str | None, jobs: str | None,
             dry_run: bool, print_spec: bool, zarr_format: int) -> None:
    spec = jobspec.one_step(inp, out, {k: v for k, v in step.items() if v is not None},
                            var=var, overwrite=bool(overwrite), zarr_format=zarr_format)
    if print_spec:
        result(spec.to_toml().rstrip("\n"), {"spec": spec.to_toml()})
        return
    prep = run.prepare(spec, site, parse_jobs(jobs), overwrite=overwrite,
                       trust=OPTIONS.trust_profiles)
    _execute(prep, dry_run)


def reduce(
    inp: In, out: Out,
    op: Annotated[ReduceOp, typer.Option("--op", help="Reduction.")] = "mean",
    axis: Axis = None,
    q: Annotated[float | None, typer.Option(help="Quantile in [0, 1] (--op quantile).")] = None,
    bins: Annotated[int | None, typer.Option(help="Histogram bins (--op histogram).")] = None,
    value_range: Annotated[tuple[float, float] | None, typer.Option(
        "--range", help="Histogram range LO HI (--op histogram).")] = None,
    var: Var = None, site: Site = None, jobs: Jobs = None, overwrite: Overwrite = None,
    dry_run: DryRun = False, print_spec: PrintSpec = False, zarr_format: ZarrFormat = 3,
) -> None:
    """Reduce an array along axes (one-off; same as a one-step job spec).

    Example: hpcscale reduce hpcscale-demo/climate.zarr mean.zarr --op mean --axis time
    """
    step: dict[str, Any]
    if op == "histogram":
        step = {"histogram": bins, "range": list(value_range) if value_range else None,
                "axis": _axes(axis)}
    else:
        step = {"reduce": str(op), "axis": _axes(axis), "q": q}
    _one_off(inp, out, step, var, overwrite, site, jobs, dry_run, print_spec, zarr_format)


def filter_(
    inp: In, out: Out,
    name: Annotated[FilterName, typer.Option("--filter", "-f", help="Filter.")],
    sigma: Annotated[list[float] | None, typer.Option(
        help="Gaussian sigma; one value or one per axis (repeat).")] = None,
    size: Annotated[list[int] | None, typer.Option(
        help="Window size; one value or one per axis (repeat).")] = None,
    percentile: Annotated[float | None, typer.Option(
        help="Percentile (percentile filter).")] = None,
    mode: Annotated[Mode, typer.Option(help="Boundary mode, as scipy.ndimage.")] = "reflect",
    cval: Annotated[float | None, typer.Option(help="Fill value for mode constant.")] = None,
    truncate: Annotated[float | None, typer.Option(help="Gaussian truncate (in sigmas).")] = None,
    axis: Axis = None,
    var: Var = None, site: Site = None, jobs: Jobs = None, overwrite: Overwrite = None,
    dry_run: DryRun = False, print_spec: PrintSpec = False, zarr_format: ZarrFormat = 3,
) -> None:
    """Filter an image or stack (one-off; same as a one-step job spec).

    Example:
    hpcscale filter hpcscale-demo/cells.zarr smooth.zarr --filter gaussian --sigma 2
    """
    def one(values: list[Any] | None) -> Any:
        if not values:
            return None
        return values[0] if len(values) == 1 else list(values)

    step = {"filter": str(name), "sigma": one(sigma), "size": one(size),
            "percentile": percentile, "mode": str(mode), "cval": cval, "truncate": truncate,
            "axes": _axes(axis)}
    _one_off(inp, out, step, var, overwrite, site, jobs, dry_run, print_spec, zarr_format)


def _kwargs(values: list[str] | None) -> dict[str, Any] | None:
    return parse_kwargs(values) or None


def _depth(values: list[str] | None) -> dict[str, int] | int | None:
    """``--depth DIM=N`` (repeat), or ``--depth N`` for every dim that is not core."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return _count("--depth", values[0], values[0])
    found: dict[str, int] = {}
    for item in values:
        dim, sep, text = item.partition("=")
        if not sep or not dim:
            raise UsageError(f"--depth {item!r}: expected DIM=N (e.g. --depth z=1), "
                             "or one N for every dim")
        found[dim] = _count("--depth", item, text)
    return found


def _count(option: str, item: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"{option} {item!r}: {text!r} is not a whole number") from None


def map_blocks(
    inp: In, out: Out,
    fn: Annotated[str, typer.Option(
        "--fn", help="The function: module:function or path/to/file.py:function.")],
    kwarg: Annotated[list[str] | None, typer.Option(
        "--kwarg", "-k", help="NAME=VALUE passed to the function (repeat); VALUE is read as "
        "TOML: 3, 2.5, true, [1, 2], else text.")] = None,
    core: Annotated[list[str] | None, typer.Option(
        "--core", help="A dim the function sees whole (repeat): one call per plane of them.")]
    = None,
    depth: Annotated[list[str] | None, typer.Option(
        "--depth", help="DIM=N samples of overlap on each side (repeat), or N for all dims.")]
    = None,
    dtype: Annotated[str | None, typer.Option(
        help="The result's dtype, e.g. bool, float64 (default: the input's).")] = None,
    boundary: Annotated[str | None, typer.Option(
        help="The halo at the array's edges: none (default: the function's own edge "
        "handling), reflect, nearest, periodic, or a number.")] = None,
    var: Var = None, site: Site = None, jobs: Jobs = None, overwrite: Overwrite = None,
    dry_run: DryRun = False, print_spec: PrintSpec = False, zarr_format: ZarrFormat = 3,
) -> None:
    """Apply your own function to every block or plane (one-off; a one-step map job spec).

    Example:
    hpcscale map-blocks hpcscale-demo/cells.zarr edges.zarr --fn skimage.feature:canny
    --kwarg sigma=2 --core y --core x --dtype bool
    """
    edge: str | float | None = boundary
    if boundary is not None and boundary not in BOUNDARIES:
        edge = parse_value(boundary)  # a number: the constant the halo is filled with
    step = {"map": fn, "kwargs": _kwargs(kwarg), "core": _axes(core), "depth": _depth(depth),
            "dtype": dtype, "boundary": edge}
    _one_off(inp, out, step, var, overwrite, site, jobs, dry_run, print_spec, zarr_format)


def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to put data and results.")]
    = Path("hpcscale-demo"),
    site: Annotated[str, typer.Option("--site", "-s", help="Site profile.")] = "local",
) -> None:
    """Generate a small climate grid and cell stack, reduce and filter them, print the outputs.

    Example: hpcscale demo
    """
    made = sample.make_all(directory)
    say(f"sample data in {directory}: {', '.join(p.name for p in made)}")
    outputs = []
    for spec in sample.demo_specs(directory):
        prep = run.prepare(spec, site, None, overwrite=True, trust=OPTIONS.trust_profiles)
        say(f"{spec.description} ...")
        with ConsoleReporter() as reporter:
            summary = _interruptible(prep, reporter)
        outputs.append({"output": summary.output, "seconds": round(summary.seconds, 2),
                        "description": spec.description})
    lines = [f"{o['output']}   {o['description']} ({o['seconds']} s)" for o in outputs]
    lines.append("open them with: python -c \"import xarray; print(xarray.open_zarr('"
                 f"{outputs[0]['output']}'))\"")
    result("\n".join(lines), outputs)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(plan)
    app.command()(calibrate)
    app.command()(script)
    app.command()(reduce)
    app.command("filter")(filter_)
    app.command("map-blocks")(map_blocks)
    app.command()(demo)
