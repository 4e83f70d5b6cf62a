"""A user's own function per block: the ``map`` step, exact at the seams.

::

    [[steps]]
    map = "skimage.feature:canny"   # module:function, or "path/to/file.py:function"
    kwargs = { sigma = 3.0 }
    core = ["y", "x"]               # dims the function sees whole
    depth = { z = 1 }               # samples of overlap per dim (name or number)
    dtype = "bool"                  # the result's dtype (default: the input's)
    boundary = "none"               # the halo at the array's edges (default "none")

What the function sees. Without ``core``: each block, all dims, with ``depth``
samples of its neighbours on each side. With ``core``: the core dims are made
one chunk each, and the function is called once per index of every dim that is
neither core nor given a depth, on an array of the core dims plus the depth dims
(in the array's order): ``core = ["y", "x"]`` on a (z, y, x) stack is one call
per plane (what ``skimage.feature.canny`` needs); add ``depth = { z = 1 }`` and it
gets (z, y, x) blocks of whole planes with one plane of halo.

Exactness. The halo is cut off the result, so with ``depth`` at least the
function's reach along each dim the result equals the function applied to the
whole array (or to each whole plane), bit for bit, whatever the chunks. The
default ``boundary = "none"`` adds nothing at the array's true edges: blocks
there are smaller by the halo, so the function's own edge handling applies just
as on the whole array. ``"reflect"``, ``"nearest"``, ``"periodic"`` or a number
pad the edges with a halo of that kind instead (dask's ``map_overlap``); the
result then equals the function on the padded array, trimmed.

The function is loaded by :mod:`hpcscale.config.functions` (this layer does not
import it) and bound to the step with :meth:`MapStep.bind`; its digest is part
of the step's :meth:`~MapStep.record`, so a run's fingerprint changes with it.
A result that is not an array of the block's shape, or whose dtype does not fit
the step's ``dtype`` (numpy's safe casting), is one ``UserFunctionError`` line
naming the step, the block and what was expected; so is an exception the
function raises.
"""

from __future__ import annotations

import hashlib
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, cast

import cloudpickle
import dask.array as da
import numpy as np
from dask.array.overlap import ensure_minimum_chunksize
from pydantic import Field, PrivateAttr, model_validator

from hpcscale.errors import UserFunctionError
from hpcscale.ops.base import (
    ArrayInfo,
    AxisList,
    FiniteFloat,
    NonNegInt,
    StepModel,
    fmt_value,
)

Block = np.ndarray[Any, Any]
BOUNDARIES = ("none", "reflect", "nearest", "periodic")
# dtype kinds a step may declare: what Zarr stores and the other steps take
_DTYPE_KINDS = "biufc"


class Function(Protocol):
    """What the step needs of a loaded user function (``config.functions.UserFunction``)."""

    @property
    def spec(self) -> str: ...
    @property
    def module(self) -> str: ...  # "" for a file function (it travels by value)
    @property
    def path(self) -> Path | None: ...
    @property
    def qualname(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def func(self) -> Callable[..., Any]: ...


@dataclass(frozen=True)
class _Plan:
    core: tuple[int, ...]  # axes the function sees whole
    loop: tuple[int, ...]  # axes the function is called along, one index at a time
    depth: tuple[int, ...]  # the declared depth, per axis
    halo: tuple[int, ...]  # the overlap added, per axis (0 where one chunk and "none")
    chunks: tuple[tuple[int, ...], ...]  # the blocks the function works on (without halo)
    out: ArrayInfo


class MapStep(StepModel):
    """``map``: a user function applied to every block (or every core plane)."""

    KIND = "map"
    FORMS: ClassVar[dict[str, str]] = {
        "map": "a function: module:function or path/to/file.py:function",
        "kwargs": "a table of keyword arguments for the function",
        "core": "a list of dim names or integers",
        "depth": "an integer >= 0, or a table of dim (name or number) = integer >= 0",
        "dtype": "a numpy dtype name such as \"float32\" or \"bool\"",
        "boundary": "one of " + ", ".join(BOUNDARIES) + ", or a number (a constant)",
    }
    # A user's function may be pure Python and hold the GIL: the local default then
    # runs a process per core (at most 4). For a function that releases it, that
    # costs the transfers between processes (docs/performance.md), not a core idling.
    HOLDS_GIL: ClassVar[bool] = True

    map: Annotated[str, Field(min_length=1)]
    kwargs: dict[str, Any] = Field(default_factory=dict)
    core: AxisList | None = None
    depth: NonNegInt | dict[str, NonNegInt] = 0
    dtype: str | None = None
    boundary: Literal["none", "reflect", "nearest", "periodic"] | FiniteFloat = "none"
    _function: Function | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _depth_values(cls, data: Any) -> Any:
        # said here, as a whole line: a table's own check would name the table, not the dim
        depth = data.get("depth") if isinstance(data, dict) else None
        if isinstance(depth, dict):
            for key, value in depth.items():
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"depth {key} = {fmt_value(value)}: the depth along a dim "
                                     "must be an integer >= 0")
        return data

    def __hash__(self) -> int:  # kwargs and depth are dicts
        return hash((type(self), self.map, repr(sorted(self.kwargs.items())), self.core,
                     repr(self.depth), self.dtype, self.boundary))

    # -- the function --

    @property
    def function(self) -> Function | None:
        """The bound function (None until :meth:`bind`)."""
        return self._function

    def bind(self, function: Function) -> MapStep:
        """A copy of the step that calls ``function`` (loaded from ``self.map``)."""
        copy = self.model_copy()
        copy._function = function
        return copy

    def _bound(self) -> Function:
        if self.function is None:
            # the job spec binds every map step when it is parsed: a caller's bug
            raise ValueError(f"{self.label()}: no function bound (MapStep.bind)")
        return self.function

    def to_table(self) -> dict[str, Any]:
        table = super().to_table()
        fn = self.function
        if fn is not None and fn.path is not None:
            # the resolved file: the table reads the same from any folder (--print-spec,
            # the run directory's copy of the job spec)
            table["map"] = f"{fn.path}:{fn.qualname}"
        return table

    def record(self) -> dict[str, Any]:
        """The table plus the function's digest: a changed function is another job."""
        fn = self.function
        return {**self.to_table(), "digest": fn.digest if fn is not None else ""}

    # -- planning --

    def _depths(self, info: ArrayInfo, core: tuple[int, ...]) -> tuple[int, ...]:
        if isinstance(self.depth, int):
            return tuple(0 if ax in core else self.depth for ax in range(info.ndim))
        depth = [0] * info.ndim
        named: set[int] = set()
        for key, value in self.depth.items():
            ref: str | int = int(key) if key.lstrip("-").isdigit() else key
            (ax,) = self.resolve_axes("depth", ref, info)
            if ax in core and value > 0:
                raise self.error(
                    f"depth {info.dims[ax]!r} = {value}, but {info.dims[ax]!r} is a core dim "
                    "(seen whole, it needs no overlap); leave it out of depth"
                )
            if ax in named:  # by name and by number
                raise self.error(f"depth names dim {info.dims[ax]!r} twice")
            named.add(ax)
            depth[ax] = value
        return tuple(depth)

    def _out_dtype(self, info: ArrayInfo) -> np.dtype[Any]:
        if self.dtype is None:
            return info.dtype
        try:
            dt = np.dtype(self.dtype)
        except TypeError:
            dt = None
        if dt is None or dt.kind not in _DTYPE_KINDS or dt.fields is not None:
            raise self.error(
                f"dtype {self.dtype!r} is not a numeric numpy dtype; use e.g. \"float32\", "
                "\"float64\", \"int32\", \"uint8\" or \"bool\""
            )
        return dt

    def _plan(self, info: ArrayInfo) -> _Plan:
        if 0 in info.shape:
            raise self.error(f"input array is empty, shape {info.shape} {info.dims_text()}")
        out_dtype = self._out_dtype(info)
        core = () if self.core is None else self.resolve_axes("core", self.core, info)
        depth = self._depths(info, core)
        if self.boundary != "none":
            for ax, d in enumerate(depth):
                if d > info.shape[ax]:
                    raise self.error(
                        f"depth {d} along {info.dims[ax]!r} is more than its length "
                        f"{info.shape[ax]}: boundary {self.boundary!r} cannot fill such a halo; "
                        "lower depth or use boundary \"none\""
                    )
        loop = () if self.core is None else tuple(
            ax for ax in range(info.ndim) if ax not in core and depth[ax] == 0)
        chunks = list(info.chunks)
        if any(len(chunks[ax]) > 1 for ax in core):
            for ax in core:
                chunks[ax] = (info.shape[ax],)
            _shrink_loop(chunks, loop, block_elements(info.chunks))
        for ax, d in enumerate(depth):
            if d and len(chunks[ax]) > 1:
                # the overlap comes from the next block alone: no block smaller than it
                size = min(d, info.shape[ax])
                chunks[ax] = tuple(ensure_minimum_chunksize(size, chunks[ax]))  # type: ignore[no-untyped-call]
        whole = tuple(chunks)
        halo = tuple(
            d if (len(cs) > 1 or self.boundary != "none") else 0
            for d, cs in zip(depth, whole, strict=True)
        )
        out = ArrayInfo(info.shape, out_dtype, info.dims, whole)
        return _Plan(core, loop, depth, halo, whole, out)

    def resolve(self, info: ArrayInfo) -> ArrayInfo:
        """Same shape and dims; the declared dtype; the chunks the function works on."""
        return self._plan(info).out

    def halo(self, info: ArrayInfo) -> tuple[int, ...]:
        return self._plan(info).halo

    def input_chunks(self, info: ArrayInfo) -> tuple[tuple[int, ...], ...]:
        return self._plan(info).chunks

    # -- the graph --

    def apply(self, arr: da.Array, info: ArrayInfo) -> da.Array:
        self.check_array(arr, info)
        plan = self._plan(info)
        fn = self._bound()
        x: Any = arr
        if plan.chunks != arr.chunks:
            x = x.rechunk(plan.chunks)
        out_dtype = plan.out.dtype
        starts = {ax: tuple(np.cumsum((0, *plan.chunks[ax][:-1])).tolist()) for ax in plan.loop}
        block_fn = partial(
            run_block, func=Shipped(fn.func), kwargs=dict(self.kwargs), loop=plan.loop,
            starts=starts, dims=info.dims, dtype=out_dtype, label=self.label(),
            name=fn.qualname, halo=plan.halo,
        )
        meta = np.empty((0,) * info.ndim, dtype=out_dtype)
        if not any(plan.halo):
            return cast(da.Array, x.map_blocks(block_fn, dtype=out_dtype, meta=meta))
        overlap: Any = da.map_overlap
        return cast(
            da.Array,
            overlap(
                block_fn,
                x,
                depth=dict(enumerate(plan.halo)),
                boundary=dict.fromkeys(range(info.ndim), self.boundary),
                trim=True,
                allow_rechunk=False,
                dtype=out_dtype,
                meta=meta,
            ),
        )


def block_elements(chunks: tuple[tuple[int, ...], ...]) -> int:
    """Elements of the largest block of an array with these chunks."""
    return math.prod(max(cs) for cs in chunks)


def _shrink_loop(chunks: list[tuple[int, ...]], loop: tuple[int, ...], budget: int) -> None:
    """With the core dims made whole, fewer indices of the loop dims per block, so that a
    block holds about as many elements as the input's largest did (at least one call's)."""
    call = math.prod(max(cs) for ax, cs in enumerate(chunks) if ax not in loop)
    room = max(1, budget // call)
    for ax in reversed(loop):  # the innermost loop dims stay together
        n = sum(chunks[ax])
        size = max(1, min(max(chunks[ax]), n, room))
        room = max(1, room // size)
        if size != max(chunks[ax]):
            chunks[ax] = (size,) * (n // size) + ((n % size,) if n % size else ())


# -- what runs on a worker -------------------------------------------------------------------


_LOADED: dict[str, Callable[..., Any]] = {}  # functions unpickled in this process, by payload


class Shipped:
    """A user's function carried as cloudpickle bytes inside a task.

    distributed pickles a task with plain pickle when it can, and plain pickle names
    a function by its module: a ``file.py:function`` module registered to travel by
    value would then be looked up on the worker, where it does not exist (the task
    could not even be read). cloudpickle's bytes carry a file function's code and
    name a module function; they are loaded once per worker process, and a function
    that cannot be loaded there is an error of its block, not of the worker.
    """

    __slots__ = ("key", "payload")

    def __init__(self, func: Callable[..., Any] | None = None, payload: bytes = b"") -> None:
        self.payload = payload or cloudpickle.dumps(func)
        self.key = hashlib.sha256(self.payload).hexdigest()

    def __reduce__(self) -> tuple[Any, ...]:
        return (Shipped, (None, self.payload))

    def __dask_tokenize__(self) -> str:
        return self.key

    def load(self) -> Callable[..., Any]:
        func = _LOADED.get(self.key)
        if func is None:
            func = _LOADED[self.key] = cloudpickle.loads(self.payload)
        return func


def run_block(
    block: Block, *, func: Shipped, kwargs: Mapping[str, Any],
    loop: tuple[int, ...], starts: Mapping[int, tuple[int, ...]], dims: tuple[str, ...],
    dtype: np.dtype[Any], label: str, name: str, halo: tuple[int, ...],
    block_id: tuple[int, ...] | None = None,
) -> Block:
    """Call the user's function on ``block`` (once per index of the ``loop`` axes), check
    each result and return the block's result in ``dtype``."""
    where = f"block {tuple(block_id) if block_id is not None else '?'}"
    try:
        fn = func.load()
    except Exception as err:  # e.g. its module does not import on this worker
        raise UserFunctionError(
            f"{label}: at {where}: cannot load {name} on this worker ({_said(err)}; "
            f"python {sys.executable})"
        ) from None
    if not loop:
        return _call(fn, block, kwargs, dtype, label, name, where, halo)
    out = np.empty(block.shape, dtype=dtype)
    for index in np.ndindex(*(block.shape[ax] for ax in loop)):
        at = [slice(None)] * block.ndim
        for ax, i in zip(loop, index, strict=True):
            at[ax] = i
        plane = (", ".join(
            f"{dims[ax]}={starts[ax][block_id[ax]] + i if block_id is not None else i}"
            for ax, i in zip(loop, index, strict=True)) + f" ({where})")
        out[tuple(at)] = _call(fn, block[tuple(at)], kwargs, dtype, label, name, plane, halo)
    return out


def _call(
    func: Callable[..., Any], block: Block, kwargs: Mapping[str, Any], dtype: np.dtype[Any],
    label: str, name: str, where: str, halo: tuple[int, ...],
) -> Block:
    try:
        result = func(block, **kwargs)
    except Exception as err:  # the user's code: any error is theirs, said in one line
        raise UserFunctionError(f"{label}: at {where}: {name} raised {_said(err)}") from None
    with_halo = " (the block's, halo included)" if any(halo) else ""
    if not isinstance(result, np.ndarray):
        raise UserFunctionError(
            f"{label}: at {where}: {name} returned a {type(result).__name__}, expected a numpy "
            f"array of shape {block.shape}{with_halo}"
        )
    if result.shape != block.shape:
        raise UserFunctionError(
            f"{label}: at {where}: {name} returned shape {result.shape}, expected "
            f"{block.shape}{with_halo}: a map step's function keeps the shape of its input"
        )
    if result.dtype != dtype:
        if not np.can_cast(result.dtype, dtype, casting="safe"):
            raise UserFunctionError(
                f"{label}: at {where}: {name} returned {result.dtype}, which does not fit the "
                f"step's dtype {dtype}; declare dtype = \"{result.dtype}\" in the step "
                "(--dtype on the command line)"
            )
        result = result.astype(dtype)
    return cast(Block, result)


def _said(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
