"""The job spec: the unit users keep in ``jobs/`` and share.

::

    description = "Mean temperature over time"
    [input]
    path = "hpcscale-demo/climate.zarr"   # relative to the current directory
    var = "temperature"
    [[steps]]
    reduce = "mean"
    axis = ["time"]
    [output]
    path = "results/mean.zarr"
    [run]                                   # optional hints
    site = "local"
    jobs = "auto"

Or, for a user's function run once per file (``hpcscale map``), a ``[map]`` table
instead of ``[input]``, ``[[steps]]`` and ``[output]``::

    [map]
    files = "scans/*.tif"                 # a glob, relative to the current directory
    function = "mylab/segment.py:segment" # module:function, or a file relative to this spec
    kwargs = { threshold = 0.5 }
    output = "results/"
    engine = "dask"                       # or "array": one SLURM job array

Steps are parsed by :mod:`hpcscale.ops`; this module owns the rest, and loads the
function of each ``map`` step (:mod:`hpcscale.config.functions`): a relative
``file.py:function`` lies in the job spec's folder (the current directory for a
command line's one-off).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hpcscale import units
from hpcscale._fs import read_toml
from hpcscale._validation import explain, problems
from hpcscale.config import functions
from hpcscale.errors import JobSpecError
from hpcscale.ops import MapStep, Step, parse_step

_VAR = r"^[A-Za-z0-9_./\-]+$"
COMMAND_LINE = "<command line>"  # the source of a spec made from a one-off command


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(min_length=1)
    var: str | None = Field(None, pattern=_VAR)


class OutputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(min_length=1)
    name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    zarr_format: Literal[2, 3] = 3
    overwrite: bool = False
    # Zarr v3 shard shape, a whole multiple of the output chunks (for very many chunks)
    shards: list[int] | None = Field(None, min_length=1)


class RunSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    site: str | None = None
    jobs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field("auto")
    # Caps the workers' walltime for this run (kept as written, so that
    # to_toml gives it back unchanged; a bare integer is minutes, as in SLURM);
    # "auto": the predicted time plus a margin, within the site's walltime.
    walltime: str | int | None = None

    @field_validator("walltime", mode="before")
    @classmethod
    def _walltime(cls, value: Any) -> Any:
        if value is not None and value != "auto":
            try:
                units.parse_walltime(value)
            except ValueError as err:  # names the forms allowed
                raise ValueError(str(err).replace("), got", ') or "auto", got', 1)) from None
        return value

    @property
    def walltime_auto(self) -> bool:
        return self.walltime == "auto"

    @property
    def walltime_seconds(self) -> int | None:
        """The walltime in seconds, or None when the spec leaves it to the site (or "auto")."""
        if self.walltime is None or self.walltime == "auto":
            return None
        return units.parse_walltime(self.walltime)


class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    input: InputSpec
    steps: list[dict[str, Any]] = Field(min_length=1)
    output: OutputSpec
    run: RunSpec = RunSpec()


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec; ``steps`` are parsed operation objects."""

    description: str
    input: InputSpec
    steps: tuple[Step, ...]
    output: OutputSpec
    run: RunSpec
    source: str  # the file it came from, or "<command line>"

    @property
    def output_path(self) -> str:
        """Where the run writes (recorded in its run directory)."""
        return self.output.path

    @property
    def user_modules(self) -> tuple[tuple[str, str], ...]:
        """``(step label, module)`` for each ``map`` step whose function is imported by
        name: the module must import on the workers too (a file function travels by
        value and needs nothing there)."""
        return tuple((s.label(), s.function.module) for s in self.steps
                     if isinstance(s, MapStep) and s.function is not None and s.function.module)

    @property
    def functions(self) -> dict[str, str]:
        """The user functions of the steps, as their tables name them, to their digests
        (recorded with an output so a resume with a changed function is refused)."""
        return {str(s.to_table()["map"]): s.function.digest for s in self.steps
                if isinstance(s, MapStep) and s.function is not None}

    def to_toml(self) -> str:
        """The spec as TOML that :func:`parse` reads back (for ``--print-spec``)."""
        data: dict[str, Any] = {}
        if self.description:
            data["description"] = self.description
        data["input"] = self.input.model_dump(exclude_none=True)
        data["steps"] = [step.to_table() for step in self.steps]
        data["output"] = self.output.model_dump(exclude_none=True, exclude_defaults=True)
        data["output"]["path"] = self.output.path
        run = self.run.model_dump(exclude_none=True, exclude_defaults=True)
        if run:
            data["run"] = run
        return tomli_w.dumps(data)


def parse(data: Mapping[str, Any], source: str, base: Path | None = None) -> JobSpec:
    """Validate a job spec table; raises :class:`JobSpecError` naming ``source``.

    ``base`` is the folder a ``map`` step's relative ``file.py:function`` lies in
    (default: the current directory)."""
    if "map" in data:
        raise JobSpecError(f"job spec {source}: a [map] spec runs a function per file; run "
                           "it with `hpcscale submit` (or `hpcscale map` on the command line)")
    try:
        model = _SpecModel.model_validate(data)
    except ValidationError as err:
        said = explain(problems(err)[0], valid_keys=_valid_keys)
        raise JobSpecError(f"job spec {source}: {said}") from err
    steps = []
    for i, table in enumerate(model.steps, start=1):
        try:
            step = parse_step(table, i)
            steps.append(_bind(step, base) if isinstance(step, MapStep) else step)
        except JobSpecError as err:
            raise JobSpecError(f"job spec {source}: {err}") from err
    return JobSpec(model.description, model.input, tuple(steps), model.output, model.run, source)


def _bind(step: MapStep, base: Path | None) -> MapStep:
    """The step with its function loaded, and refused if it cannot take a block and the
    step's kwargs."""
    where = step.label()
    fn = functions.load(step.map, where=where, base=base)
    functions.check_call(fn, where, (None,), dict(step.kwargs), "f(block, **kwargs)")
    return step.bind(fn)


def _valid_keys(loc: Sequence[Any]) -> list[str]:
    model: type[BaseModel] = _SpecModel
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return list(model.model_fields)


def load(path: str | Path) -> JobSpec:
    """Read and validate a job spec file of ``[input]``, ``[[steps]]`` and ``[output]``."""
    p = Path(path)
    data = read_toml(p, JobSpecError, "job spec")
    return parse(data, str(p), base=p.absolute().parent)


def load_any(path: str | Path) -> JobSpec | MapSpec:
    """Read and validate a job spec file of either form: ``[input]`` + ``[[steps]]`` +
    ``[output]`` (a :class:`JobSpec`) or ``[map]`` (a :class:`MapSpec`)."""
    p = Path(path)
    data = read_toml(p, JobSpecError, "job spec")
    if "map" in data:
        return parse_map(data, str(p))
    return parse(data, str(p), base=p.absolute().parent)


# -- [map]: a user's function per file -------------------------------------------------------

ENGINES = ("dask", "array")


class MapSection(BaseModel):
    """The ``[map]`` table: which files, which function, where the results go."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    files: str = Field(min_length=1)  # a glob; ** reaches into subfolders
    function: str = Field(min_length=1)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    output: str = Field(min_length=1)
    engine: Literal["dask", "array"] = "dask"
    max_failures: Annotated[int, Field(ge=1)] | None = None
    overwrite: bool = False


class _MapSpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    map: MapSection
    run: RunSpec = RunSpec()


@dataclass(frozen=True)
class MapSpec:
    """A validated ``[map]`` job spec: a function run once per file."""

    description: str
    map: MapSection
    run: RunSpec
    source: str  # the file it came from, or "<command line>"

    @property
    def output_path(self) -> str:
        return self.map.output

    @property
    def base(self) -> Path:
        """Where a ``file.py:function`` resolves: the spec's folder (the current
        directory for a spec made on the command line)."""
        return Path.cwd() if self.source == COMMAND_LINE else Path(self.source).absolute().parent

    @property
    def where(self) -> str:
        """How messages name the function: the option or the spec's key."""
        return "--fn" if self.source == COMMAND_LINE else "[map] function"

    def to_toml(self) -> str:
        data: dict[str, Any] = {}
        if self.description:
            data["description"] = self.description
        data["map"] = self.map.model_dump(exclude_none=True, exclude_defaults=True)
        data["map"].update(files=self.map.files, function=self.map.function,
                           output=self.map.output)
        run = self.run.model_dump(exclude_none=True, exclude_defaults=True)
        if run:
            data["run"] = run
        return tomli_w.dumps(data)


_STEP_KEYS = ("input", "steps", "output")


def parse_map(data: Mapping[str, Any], source: str) -> MapSpec:
    """Validate a ``[map]`` job spec table; raises :class:`JobSpecError` naming ``source``."""
    both = [k for k in _STEP_KEYS if k in data]
    if both:
        shown = ", ".join(f"[{k}]" if k != "steps" else "[[steps]]" for k in both)
        raise JobSpecError(f"job spec {source}: has [map] and {shown}; a job spec is either "
                           "[input] + [[steps]] + [output], or [map]")
    try:
        model = _MapSpecModel.model_validate(data)
    except ValidationError as err:
        said = explain(problems(err)[0], valid_keys=_map_valid_keys)
        raise JobSpecError(f"job spec {source}: {said}") from err
    return MapSpec(model.description, model.map, model.run, source)


def _map_valid_keys(loc: Sequence[Any]) -> list[str]:
    if list(loc) == ["map"]:
        return list(MapSection.model_fields)
    if list(loc) == ["run"]:
        return list(RunSpec.model_fields)
    return list(_MapSpecModel.model_fields)


def map_spec(
    files: str, output: str, function: str, *, kwargs: Mapping[str, Any] | None = None,
    engine: str = "dask", max_failures: int | None = None, overwrite: bool = False,
    site: str | None = None, jobs: int | str | None = None,
) -> MapSpec:
    """The ``[map]`` job spec equivalent to ``hpcscale map FILES OUTPUT --fn FUNCTION``."""
    table: dict[str, Any] = {"files": files, "function": function, "output": output,
                             "kwargs": dict(kwargs or {}), "engine": engine,
                             "overwrite": overwrite}
    if max_failures is not None:
        table["max_failures"] = max_failures
    run = {k: v for k, v in (("site", site), ("jobs", jobs)) if v is not None}
    return parse_map({"map": table, **({"run": run} if run else {})}, COMMAND_LINE)


def one_step(
    input_path: str, output_path: str, step: Mapping[str, Any], *, var: str | None = None,
    overwrite: bool = False, zarr_format: int = 3,
) -> JobSpec:
    """The job spec equivalent to a one-off ``reduce``/``filter``/``map-blocks`` command."""
    data: dict[str, Any] = {
        "input": {"path": input_path} | ({"var": var} if var else {}),
        "steps": [dict(step)],
        "output": {"path": output_path, "overwrite": overwrite, "zarr_format": zarr_format},
    }
    return parse(data, COMMAND_LINE)
