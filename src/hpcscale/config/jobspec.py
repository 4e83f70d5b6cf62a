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

Steps are parsed by :mod:`hpcscale.ops`; this module owns the rest.
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
from hpcscale.errors import JobSpecError
from hpcscale.ops import Step, parse_step

_VAR = r"^[A-Za-z0-9_./\-]+$"


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
    # to_toml gives it back unchanged; a bare integer is minutes, as in SLURM).
    walltime: str | int | None = None

    @field_validator("walltime", mode="before")
    @classmethod
    def _walltime(cls, value: Any) -> Any:
        if value is not None:
            units.parse_walltime(value)  # ValueError names the forms allowed
        return value

    @property
    def walltime_seconds(self) -> int | None:
        """The walltime in seconds, or None when the spec leaves it to the site."""
        return None if self.walltime is None else units.parse_walltime(self.walltime)


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


def parse(data: Mapping[str, Any], source: str) -> JobSpec:
    """Validate a job spec table; raises :class:`JobSpecError` naming ``source``."""
    try:
        model = _SpecModel.model_validate(data)
    except ValidationError as err:
        said = explain(problems(err)[0], valid_keys=_valid_keys)
        raise JobSpecError(f"job spec {source}: {said}") from err
    steps = []
    for i, table in enumerate(model.steps, start=1):
        try:
            steps.append(parse_step(table, i))
        except JobSpecError as err:
            raise JobSpecError(f"job spec {source}: {err}") from err
    return JobSpec(model.description, model.input, tuple(steps), model.output, model.run, source)


def _valid_keys(loc: Sequence[Any]) -> list[str]:
    model: type[BaseModel] = _SpecModel
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
    return list(model.model_fields)


def load(path: str | Path) -> JobSpec:
    """Read and validate a job spec file."""
    p = Path(path)
    data = read_toml(p, JobSpecError, "job spec")
    return parse(data, str(p))


def one_step(
    input_path: str, output_path: str, step: Mapping[str, Any], *, var: str | None = None,
    overwrite: bool = False, zarr_format: int = 3,
) -> JobSpec:
    """The job spec equivalent to a one-off ``reduce``/``filter`` command."""
    data: dict[str, Any] = {
        "input": {"path": input_path} | ({"var": var} if var else {}),
        "steps": [dict(step)],
        "output": {"path": output_path, "overwrite": overwrite, "zarr_format": zarr_format},
    }
    return parse(data, "<command line>")
