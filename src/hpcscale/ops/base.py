"""What every step shares: ``ArrayInfo``, the step base model and its checks.

A step is a frozen pydantic model built from one ``[[steps]]`` table. Nothing
here computes; the step modules (``filters``, ``reduce``, ``histogram``, ``map``) add
``_plan`` and ``apply``. Every refusal a user can cause is a one-line
``JobSpecError`` that starts with the step's label, e.g. ``step 2 (median): ...``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Self

import dask.array as da
import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, ValidationError

from hpcscale._validation import Problem, explain, problems
from hpcscale.errors import JobSpecError


@dataclass(frozen=True)
class ArrayInfo:
    """Shape, dtype, dimension names and chunks of an array, without its data.

    Steps are checked against this before anything runs, and ``resolve``
    returns the info of the step's output (its chunks are the real output chunks).
    """

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    dims: tuple[str, ...]
    chunks: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        # Callers build this from real arrays; a mismatch is a bug, not user input.
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))
        object.__setattr__(self, "dims", tuple(self.dims))
        object.__setattr__(self, "chunks", tuple(tuple(int(c) for c in cs) for cs in self.chunks))
        if not len(self.shape) == len(self.dims) == len(self.chunks):
            raise ValueError(f"shape {self.shape}, dims {self.dims} and chunks disagree in length")
        if len(set(self.dims)) != len(self.dims):
            raise ValueError(f"dims {self.dims} repeat a name")
        for n, cs in zip(self.shape, self.chunks, strict=True):
            if sum(cs) != n:
                raise ValueError(f"chunks {self.chunks} do not add up to shape {self.shape}")

    @classmethod
    def of(cls, arr: da.Array, dims: Sequence[str]) -> ArrayInfo:
        """Info of a dask array, given its dimension names."""
        return cls(tuple(arr.shape), arr.dtype, tuple(dims), tuple(arr.chunks))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dims_text(self) -> str:
        return "(" + ", ".join(self.dims) + ")"


# -- field types shared by the step models -------------------------------------------------------


def _list_to_tuple(value: object) -> object:
    # TOML gives lists; tuples keep the frozen models hashable.
    return tuple(value) if isinstance(value, list) else value


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PosFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]
AxisRef = str | int
AxisList = Annotated[tuple[AxisRef, ...], BeforeValidator(_list_to_tuple)]
Mode = Literal["reflect", "nearest", "mirror", "constant", "wrap"]


# Parameters given once for all axes or once per axis.
PerAxisNonNegFloat = (
    NonNegFloat | Annotated[tuple[NonNegFloat, ...], BeforeValidator(_list_to_tuple)]
)
PerAxisNonNegInt = NonNegInt | Annotated[tuple[NonNegInt, ...], BeforeValidator(_list_to_tuple)]
PerAxisPosInt = PosInt | Annotated[tuple[PosInt, ...], BeforeValidator(_list_to_tuple)]
PerAxisInt = int | Annotated[tuple[int, ...], BeforeValidator(_list_to_tuple)]


def fmt_value(value: object) -> str:
    """A value as it would look in the job spec (TOML-like), for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- the step base ----------------------------------------------------------------------------


class StepModel(BaseModel):
    """Base of all steps. Subclasses set ``KIND`` (the table's first key) and ``FORMS``.

    ``FORMS`` maps each key to the form it accepts, used verbatim in messages:
    ``sigma must be a finite number >= 0 per axis, got -1``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    KIND: ClassVar[str]
    FORMS: ClassVar[dict[str, str]]
    # Keys listed after the step's own ones (the options every filter shares).
    TRAILING: ClassVar[tuple[str, ...]] = ()
    # The step's block function holds the GIL: a local run uses a process per core.
    HOLDS_GIL: ClassVar[bool] = False
    _index: int | None = PrivateAttr(default=None)

    # The step number is for messages only: two steps with the same parameters are equal.
    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), tuple(self.__dict__.items())))

    # -- naming and errors --

    @property
    def name(self) -> str:
        """The operation's name, e.g. ``gaussian``, ``mean``, ``histogram``."""
        return str(getattr(self, self.KIND))

    def label(self) -> str:
        if self._index is None:
            return f"{self.name} step"
        return f"step {self._index} ({self.name})"

    def error(self, message: str) -> JobSpecError:
        return JobSpecError(f"{self.label()}: {message}")

    def numbered(self, index: int) -> Self:
        """A copy whose messages say ``step <index>``."""
        copy = self.model_copy()
        copy._index = index
        return copy

    @classmethod
    def keys(cls) -> list[str]:
        """The table keys this step accepts, its kind key first."""
        own = [k for k in cls.model_fields if k != cls.KIND and k not in cls.TRAILING]
        return [cls.KIND, *own, *cls.TRAILING]

    @classmethod
    def parse(cls, table: dict[str, Any], index: int | None) -> Self:
        """Build from a table, turning pydantic's errors into one ``JobSpecError`` line."""
        try:
            step = cls.model_validate(table)
        except ValidationError as exc:
            label = f"step {index}" if index is not None else "step"
            label += f" ({cls.table_name(table)})"
            raise JobSpecError(f"{label}: {cls._explain(exc, table)}") from None
        step._index = index
        return step

    @classmethod
    def table_name(cls, table: dict[str, Any]) -> str:
        """The operation's name as the table gives it (for messages before parsing)."""
        return str(table.get(cls.KIND, cls.KIND))

    @classmethod
    def _explain(cls, exc: ValidationError, table: dict[str, Any]) -> str:
        def valid_keys(_: tuple[str, ...]) -> list[str]:
            return list(cls.keys())

        def shown(problem: Problem) -> str:
            # the value as the table wrote it (pydantic's input may be converted)
            return explain(problem, valid_keys=valid_keys, forms=cls.FORMS,
                           show=lambda _: fmt_value(table.get(problem.key)))

        return "; ".join(shown(p) for p in problems(exc, depth=1))

    def to_table(self) -> dict[str, Any]:
        """The TOML table that parses back to this step (defaults left out)."""
        data = self.model_dump(exclude_defaults=True)
        table: dict[str, Any] = {}
        for key in self.keys():
            if key in data:
                value = data[key]
                table[key] = list(value) if isinstance(value, tuple) else value
        return table

    def record(self) -> dict[str, Any]:
        """What a run records of the step (its fingerprint, the output's provenance): its
        table, plus what the table cannot say (a user function's digest)."""
        return self.to_table()

    def describe(self) -> str:
        """The step as a one-line TOML inline table: ``{ reduce = "mean", axis = ["time"] }``."""
        items = ", ".join(f"{k} = {_toml(v)}" for k, v in self.to_table().items())
        return "{ " + items + " }"

    # -- the contract the step modules implement --

    def resolve(self, info: ArrayInfo) -> ArrayInfo:
        """Check the step against the input and return the output's info.

        Raises ``JobSpecError`` for anything that would fail or mislead at run time.
        """
        raise NotImplementedError

    def halo(self, info: ArrayInfo) -> tuple[int, ...]:
        """Overlap depth added on each side of each block, per input axis.

        0 for reductions and histograms, and on axes a filter does not act on or
        that are one chunk. A block then holds ``input_chunks`` + 2 x halo samples.
        """
        self.resolve(info)
        return (0,) * info.ndim

    def input_chunks(self, info: ArrayInfo) -> tuple[tuple[int, ...], ...]:
        """Chunks of the blocks the step works on, after any rechunking it does itself.

        Filters merge chunks smaller than their reach; quantiles put each reduced
        dim in one chunk. Otherwise the input's chunks.
        """
        self.resolve(info)
        return info.chunks

    def batch_axes(self, info: ArrayInfo) -> tuple[int, ...]:
        """Axes along which reading several stored chunks per task leaves the step's
        result (and its output chunks) unchanged: a reduction's reduced axes. Empty
        for steps whose output blocks follow their input blocks."""
        return ()

    def apply(self, arr: da.Array, info: ArrayInfo) -> da.Array:
        """The lazy result for ``arr`` (described by ``info``); nothing is computed."""
        raise NotImplementedError

    # -- checks shared by the step modules --

    def check_array(self, arr: da.Array, info: ArrayInfo) -> None:
        # A mismatch is a caller bug, not user input: ValueError.
        if tuple(arr.shape) != info.shape or arr.dtype != info.dtype or arr.chunks != info.chunks:
            raise ValueError(
                f"{self.label()}: array {arr.shape} {arr.dtype} {arr.chunks} does not match {info}"
            )

    def check_input(
        self, info: ArrayInfo, *, allow_bool: bool = True, allow_float16: bool = True
    ) -> None:
        """Refuse empty arrays and dtypes the operation cannot handle."""
        dt = info.dtype
        numeric = dt.kind in "iuf" or (dt.kind == "b" and allow_bool)
        if not numeric or (dt == np.float16 and not allow_float16):
            allowed = "integer or float32/float64" if not allow_float16 else "integer or float"
            if allow_bool:
                allowed = "bool, " + allowed
            raise self.error(f"input dtype {dt} is not supported; the input must be {allowed}")
        if 0 in info.shape:
            raise self.error(f"input array is empty, shape {info.shape} {info.dims_text()}")

    def resolve_axes(
        self, key: str, spec: AxisRef | Sequence[AxisRef] | None, info: ArrayInfo
    ) -> tuple[int, ...]:
        """Axis names or integers (negatives count from the end) to sorted axis numbers.

        ``None`` means all axes; an empty list, an unknown name, an integer out of
        range or the same axis twice is refused.
        """
        if spec is None:
            return tuple(range(info.ndim))
        refs: Iterable[AxisRef] = (spec,) if isinstance(spec, str | int) else spec
        found: list[int] = []
        for ref in refs:
            if isinstance(ref, str):
                if ref not in info.dims:
                    raise self.error(f"{key} {ref!r} is not a dim; dims are {info.dims_text()}")
                ax = info.dims.index(ref)
            else:
                if not -info.ndim <= ref < info.ndim:
                    raise self.error(
                        f"{key} {ref} is out of range for {info.ndim} dims {info.dims_text()}"
                    )
                ax = ref % info.ndim
            if ax in found:
                raise self.error(f"{key} names dim {info.dims[ax]!r} twice")
            found.append(ax)
        if not found:
            raise self.error(f"{key} must name at least one dim; leave it out to mean all dims")
        return tuple(sorted(found))

    def expand(
        self, key: str, value: Any, axes: tuple[int, ...], info: ArrayInfo
    ) -> tuple[Any, ...]:
        """A scalar or per-axis parameter as one value per acted-on axis."""
        if not isinstance(value, tuple):
            return (value,) * len(axes)
        if len(value) != len(axes):
            names = ", ".join(info.dims[a] for a in axes)
            raise self.error(
                f"{key} has {len(value)} values but the step acts on {len(axes)} dims ({names}); "
                "give one value, or one per dim"
            )
        return value


def block_bytes(chunks: tuple[tuple[int, ...], ...], dtype: np.dtype[Any]) -> int:
    """Bytes of the largest block of an array with these chunks."""
    return math.prod(max(cs) for cs in chunks) * dtype.itemsize


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):  # a map step's kwargs and depth
        def key(k: object) -> str:
            bare = isinstance(k, str) and k and all(c.isascii() and (c.isalnum() or c in "_-")
                                                   for c in k)
            return str(k) if bare else _toml(str(k))

        return "{ " + ", ".join(f"{key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return repr(value)
