"""The ``map`` step: a user's function per block equals the function on the whole array
(or on each whole plane, with ``core``), bit for bit; every refusal is one line."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy import ndimage
from skimage.feature import canny

from hpcscale.config import functions
from hpcscale.errors import JobSpecError, UserFunctionError
from hpcscale.ops import ArrayInfo, MapStep, build_graph, parse_step

HERE = Path(__file__).resolve().parent
FNS = HERE / "userfns.py"
DIMS = ("z", "y", "x")


def step_of(table: dict[str, Any], index: int = 1) -> MapStep:
    """Parse a map step and bind its function, as the job spec does."""
    step = parse_step(table, index)
    assert isinstance(step, MapStep)
    fn = functions.load(step.map, where=step.label(), base=HERE)
    return step.bind(fn)


def run(table: dict[str, Any], a: np.ndarray, chunks: Any, dims: tuple[str, ...] = DIMS) -> Any:
    """Apply one map step to ``a`` chunked as given; check that what it declares (chunks,
    shape, dtype) is what it computes; the values."""
    arr = da.from_array(a, chunks=chunks)
    info = ArrayInfo.of(arr, dims[: a.ndim])
    step = step_of(table)
    out_info = step.resolve(info)
    out = step.apply(arr, info)
    assert out.chunks == out_info.chunks
    values = np.asarray(out.compute())
    assert values.shape == out_info.shape == a.shape
    assert values.dtype == out_info.dtype
    return values


def per_call(fn: Any, a: np.ndarray, seen: set[int]) -> np.ndarray:
    """The reference: ``fn`` on the whole array's ``seen`` axes, once per index of the rest."""
    loop = [ax for ax in range(a.ndim) if ax not in seen]
    if not loop:
        return np.asarray(fn(a))
    out: np.ndarray | None = None
    for index in np.ndindex(*(a.shape[ax] for ax in loop)):
        at: list[Any] = [slice(None)] * a.ndim
        for ax, i in zip(loop, index, strict=True):
            at[ax] = i
        got = np.asarray(fn(a[tuple(at)]))
        if out is None:
            out = np.empty(a.shape, got.dtype)
        out[tuple(at)] = got
    assert out is not None
    return out


def _chunking(n: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.lists(st.integers(1, n), min_size=1, max_size=4).map(lambda cs: _fit(cs, n))


def _fit(cs: list[int], n: int) -> tuple[int, ...]:
    out: list[int] = []
    for c in itertools.cycle(cs):
        if sum(out) + c >= n:
            out.append(n - sum(out))
            return tuple(out)
        out.append(c)
    raise AssertionError  # pragma: no cover


# -- the properties --------------------------------------------------------------------------


@st.composite
def box_cases(draw: st.DrawFn) -> tuple[dict[str, Any], np.ndarray, Any, set[int], int]:
    """A box filter of reach r, random chunks, core dims and depths >= r on what it sees."""
    ndim = draw(st.integers(2, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(_chunking(n)) for n in shape)
    reach = draw(st.integers(0, 2))
    size = draw(st.sampled_from([s for s in (2 * reach, 2 * reach + 1) if s >= 1]))
    core: list[int] | None = None
    if draw(st.booleans()):
        core = sorted(draw(st.sets(st.integers(0, ndim - 1), min_size=1, max_size=ndim)))
    depth: dict[int, int] = {}
    for ax in range(ndim):
        if core is not None and ax in core:
            continue
        looped = core is not None and draw(st.booleans())  # called per index along it
        depth[ax] = 0 if looped else reach + draw(st.integers(0, 2))
    table: dict[str, Any] = {"kwargs": {"size": size}}
    if draw(st.booleans()):
        table["map"] = f"{FNS}:box"
    else:  # the module form, scipy's own function
        table["map"] = "scipy.ndimage:uniform_filter"
        table["kwargs"]["mode"] = "reflect"
    if core is not None:
        table["core"] = [DIMS[ax] if draw(st.booleans()) else ax for ax in core]
    # by name or by number (a TOML key is a string)
    table["depth"] = {(DIMS[ax] if draw(st.booleans()) else str(ax)): d
                      for ax, d in depth.items() if d or draw(st.booleans())}
    seen = set(range(ndim)) if core is None else set(core) | {a for a, d in depth.items() if d}
    # integers: uniform_filter's running sum of floats depends on where a block starts
    dtype = draw(st.sampled_from(["int32", "uint8", "int64"]))
    a = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 100, shape).astype(dtype)
    return table, a, chunks, seen, size


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(box_cases())
def test_property_a_neighbourhood_function_equals_it_on_the_whole_array(case: Any) -> None:
    table, a, chunks, seen, size = case
    event("core" if "core" in table else "no core")
    want = per_call(lambda x: ndimage.uniform_filter(x, size=size, mode="reflect"), a, seen)
    got = run(table, a, chunks)
    assert got.dtype == a.dtype
    np.testing.assert_array_equal(got, want)


@st.composite
def padded_cases(draw: st.DrawFn) -> tuple[dict[str, Any], np.ndarray, Any, Any]:
    ndim = draw(st.integers(2, 3))
    shape = tuple(draw(st.lists(st.integers(2, 8), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(_chunking(n)) for n in shape)
    reach = draw(st.integers(1, 2))
    depth = [min(n, reach + draw(st.integers(0, 1))) for n in shape]
    boundary = draw(st.sampled_from(["reflect", "nearest", "periodic", -7]))
    table = {"map": f"{FNS}:box", "kwargs": {"size": 2 * min(depth) + 1},
             "depth": {DIMS[ax]: d for ax, d in enumerate(depth)}, "boundary": boundary}
    a = np.random.default_rng(draw(st.integers(0, 2**16))).integers(0, 100, shape)
    return table, a.astype("int32"), chunks, depth


_NUMPY_PAD = {"reflect": "symmetric", "nearest": "edge", "periodic": "wrap"}


@settings(max_examples=30, deadline=None)
@given(padded_cases())
def test_property_a_boundary_pads_the_edges_as_numpy_pad(case: Any) -> None:
    """With a boundary, the result is the function on the padded array, trimmed."""
    table, a, chunks, depth = case
    widths = [(d, d) for d in depth]
    b = table["boundary"]
    padded = (np.pad(a, widths, mode="constant", constant_values=b) if not isinstance(b, str)
              else np.pad(a, widths, mode=_NUMPY_PAD[b]))  # type: ignore[call-overload]
    whole = ndimage.uniform_filter(padded, size=table["kwargs"]["size"], mode="reflect")
    want = whole[tuple(slice(d, d + n) for d, n in zip(depth, a.shape, strict=True))]
    np.testing.assert_array_equal(run(table, a, chunks), want)


@st.composite
def canny_cases(draw: st.DrawFn) -> tuple[np.ndarray, Any, float]:
    ndim = draw(st.integers(2, 3))
    shape = ((draw(st.integers(1, 3)),) if ndim == 3 else ()) + tuple(
        draw(st.lists(st.integers(6, 20), min_size=2, max_size=2)))
    chunks = tuple(draw(_chunking(n)) for n in shape)
    sigma = draw(st.sampled_from([1.0, 1.5, 2.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = ndimage.gaussian_filter(rng.random(shape), 1.0) + (rng.random(shape) > 0.7)
    return a.astype(draw(st.sampled_from(["float64", "float32"]))), chunks, sigma


@settings(max_examples=30, deadline=None)
@given(canny_cases())
def test_property_canny_per_plane_equals_canny_on_each_whole_plane(case: Any) -> None:
    a, chunks, sigma = case
    dims = DIMS[-a.ndim:]
    table = {"map": "skimage.feature:canny", "kwargs": {"sigma": sigma}, "core": ["y", "x"],
             "dtype": "bool"}
    got = run(table, a, chunks, dims)
    want = (np.stack([canny(p, sigma=sigma) for p in a]) if a.ndim == 3
            else canny(a, sigma=sigma))
    assert want.any()  # some edges, or the test shows nothing
    np.testing.assert_array_equal(got, want)


# -- what the function sees ------------------------------------------------------------------


def test_with_core_the_function_is_called_per_plane_of_core_and_depth_dims() -> None:
    a = np.arange(4 * 5 * 6 * 7, dtype="int16").reshape(4, 5, 6, 7)
    import userfns  # by name (this folder is on sys.path): the step calls this very module

    step = step_of({"map": "userfns:seen", "core": ["y", "x"], "depth": {"z": 1}})
    calls = userfns.CALLS
    calls.clear()
    arr = da.from_array(a, chunks=(2, 2, 3, 7))
    out = step.apply(arr, ArrayInfo.of(arr, ("t", "z", "y", "x")))
    np.testing.assert_array_equal(out.compute(), a)
    # one call per t, on (z block + halo, whole y, whole x): z blocks 2, 2, 1 with one
    # plane of halo inside the array (none at its edges)
    assert sorted(set(calls)) == [(2, 6, 7), (3, 6, 7), (4, 6, 7)]
    assert len(calls) == 4 * 3


def test_input_chunks_make_core_dims_whole_and_keep_blocks_small() -> None:
    info = ArrayInfo((10, 64, 64), np.dtype("float32"), DIMS, ((5, 5), (16,) * 4, (16,) * 4))
    step = step_of({"map": f"{FNS}:edges", "core": ["y", "x"]})
    # a block of 5 x 16 x 16 becomes one 64 x 64 plane per block, not 5
    assert step.input_chunks(info) == ((1,) * 10, (64,), (64,))
    assert step.halo(info) == (0, 0, 0)
    # already whole planes: the input's chunks stay
    whole = ArrayInfo((10, 64, 64), np.dtype("float32"), DIMS, ((5, 5), (64,), (64,)))
    assert step.input_chunks(whole) == whole.chunks


def test_depth_merges_chunks_smaller_than_it_and_one_chunk_dims_get_no_halo() -> None:
    info = ArrayInfo((10, 8), np.dtype("int32"), ("y", "x"), ((1,) * 10, (8,)))
    step = step_of({"map": f"{FNS}:box", "depth": 3})
    chunks = step.input_chunks(info)
    assert min(chunks[0]) >= 3
    assert step.halo(info) == (3, 0)
    padded = step_of({"map": f"{FNS}:box", "depth": 3, "boundary": "reflect"})
    assert padded.halo(info) == (3, 3)  # the edges are padded whatever the chunks


def test_resolve_gives_the_declared_dtype() -> None:
    info = ArrayInfo((4, 6), np.dtype("float32"), ("y", "x"), ((2, 2), (6,)))
    assert step_of({"map": f"{FNS}:edges", "dtype": "bool"}).resolve(info).dtype == np.bool_
    assert step_of({"map": f"{FNS}:box"}).resolve(info).dtype == np.float32


def test_kwargs_reach_the_function() -> None:
    a = np.random.default_rng(1).random((12, 12))
    got = run({"map": f"{FNS}:edges", "kwargs": {"sigma": 2.0}, "dtype": "bool"}, a, 12,
              ("y", "x"))
    np.testing.assert_array_equal(got, canny(a, sigma=2.0))
    assert not np.array_equal(got, canny(a, sigma=1.0))


def test_a_safe_cast_result_is_cast_to_the_declared_dtype() -> None:
    a = np.arange(24, dtype="int16").reshape(4, 6)
    got = run({"map": f"{FNS}:seen", "dtype": "float64"}, a, 2, ("y", "x"))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, a)


def test_map_then_reduce_is_one_graph() -> None:
    a = np.random.default_rng(2).random((5, 16, 16)).astype("float32")
    arr = da.from_array(a, chunks=(2, 8, 8))
    info = ArrayInfo.of(arr, DIMS)
    steps = [step_of({"map": "skimage.feature:canny", "kwargs": {"sigma": 1.0},
                      "core": ["y", "x"], "dtype": "bool"}),
             parse_step({"reduce": "sum", "axis": ["z"]}, 2)]
    out, out_info = build_graph(arr, info, steps)
    assert out_info.dims == ("y", "x")
    want = np.stack([canny(p, sigma=1.0) for p in a]).sum(axis=0)
    np.testing.assert_array_equal(out.compute(), want)


# -- the table, the record ---------------------------------------------------------------------


def test_table_round_trips_and_the_record_has_the_digest(tmp_path: Path) -> None:
    src = tmp_path / "f.py"
    src.write_text("def f(a, k=1):\n    return a * k\n")
    table = {"map": "f.py:f", "kwargs": {"k": 2}, "core": ["y"], "depth": {"x": 1},
             "dtype": "float64", "boundary": "nearest"}
    step = parse_step(table, 1)
    assert isinstance(step, MapStep)
    bound = step.bind(functions.load("f.py:f", base=tmp_path))
    # a file function's table names the resolved file: it reads the same from anywhere
    assert bound.to_table() == {**table, "map": f"{src.resolve()}:f"}
    assert parse_step(step.to_table()) == step
    assert bound.record()["digest"] == functions.load(f"{src}:f").digest
    assert bound.describe().startswith(f'{{ map = "{src.resolve()}:f", kwargs = {{ k = 2 }}')
    src.write_text("def f(a, k=1):\n    return a * k + 1\n")
    again = step.bind(functions.load("f.py:f", base=tmp_path))
    assert again.record() != bound.record()
    assert again.to_table() == bound.to_table()
    assert hash(step) == hash(parse_step(table, 2))


def test_an_unbound_step_is_a_callers_bug() -> None:
    step = parse_step({"map": "numpy:negative"}, 1)
    arr = da.zeros((2, 2), chunks=1)
    with pytest.raises(ValueError, match="no function bound"):
        step.apply(arr, ArrayInfo.of(arr, ("y", "x")))


# -- refusals: one line each -------------------------------------------------------------------


INFO = ArrayInfo((6, 8, 10), np.dtype("float32"), DIMS, ((3, 3), (4, 4), (5, 5)))


@pytest.mark.parametrize(("table", "message"), [
    ({"map": "f", "core": ["t"]}, r"^step 1 \(f\): core 't' is not a dim; dims are \(z, y, x\)$"),
    ({"map": "f", "core": [5]}, r"core 5 is out of range for 3 dims"),
    ({"map": "f", "core": []}, r"core must name at least one dim"),
    ({"map": "f", "depth": {"t": 1}}, r"depth 't' is not a dim"),
    ({"map": "f", "depth": {"7": 1}}, r"depth 7 is out of range"),
    ({"map": "f", "core": ["y", "x"], "depth": {"x": 2}},
     r"depth 'x' = 2, but 'x' is a core dim .*leave it out of depth$"),
    ({"map": "f", "depth": {"z": 1, "0": 2}}, r"depth names dim 'z' twice"),
    ({"map": "f", "depth": {"-1": 0, "x": 1}}, r"depth names dim 'x' twice"),
    ({"map": "f", "dtype": "float33"}, r"dtype 'float33' is not a numeric numpy dtype"),
    ({"map": "f", "dtype": "U8"}, r"dtype 'U8' is not a numeric numpy dtype"),
    ({"map": "f", "dtype": "object"}, r"dtype 'object' is not a numeric"),
    ({"map": "f", "depth": 7, "boundary": "reflect"},
     r"depth 7 along 'z' is more than its length 6: boundary 'reflect' cannot fill"),
])
def test_resolve_refusals(table: dict[str, Any], message: str) -> None:
    step = parse_step(table, 1)
    with pytest.raises(JobSpecError, match=message) as err:
        step.resolve(INFO)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("table", "message"), [
    ({"map": "f", "depth": -1}, r"^step 1 \(f\): depth must be an integer >= 0, or a table"),
    ({"map": "f", "depth": {"z": -1}},
     r"^step 1 \(f\): depth z = -1: the depth along a dim must be an integer >= 0$"),
    ({"map": "f", "depth": {"z": 1.5}}, r"depth z = 1.5: the depth along a dim must be"),
    ({"map": "f", "boundary": "wrap"}, r"boundary must be one of none, reflect, nearest, "
                                       r"periodic, or a number .*got 'wrap'"),
    ({"map": "f", "kwargs": 3}, r"kwargs must be a table of keyword arguments"),
    ({"map": "f", "core": "y"}, r"core must be a list of dim names"),
    ({"map": "f", "dtype": 3}, r"dtype must be a numpy dtype name"),
    ({"map": "f", "shape": 3}, r"unknown key 'shape'; valid keys: map, kwargs, core, depth, "
                               r"dtype, boundary$"),
    ({"map": ""}, r"map must be a function"),
])
def test_parse_refusals(table: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError, match=message) as err:
        parse_step(table, 1)
    assert "\n" not in str(err.value)


def _compute(fn: str, a: np.ndarray, table: dict[str, Any] | None = None) -> None:
    run({"map": f"{FNS}:{fn}", **(table or {})}, a, (2, 4), ("y", "x"))


@pytest.mark.parametrize(("fn", "table", "message"), [
    ("shorter", {}, r"^step 1 \(.*userfns.py:shorter\): at block \(\d, \d\): shorter returned "
                    r"shape \(1, 4\), expected \(2, 4\): a map step's function keeps the shape"),
    ("shorter", {"depth": {"y": 1}},
     r"returned shape \(\d, 4\), expected \(\d, 4\) \(the block's, halo included\)"),
    ("as_float64", {}, r"at block \(\d, \d\): as_float64 returned float64, which does not fit "
                       r"the step's dtype float32; declare dtype = \"float64\" in the step"),
    ("as_list", {}, r"as_list returned a list, expected a numpy array of shape \(2, 4\)"),
    ("fails", {}, r"at block \(\d, \d\): fails raised ValueError: no cells found in this block$"),
    ("fails", {"core": ["x"]}, r"at y=\d \(block \(\d, 0\)\): fails raised ValueError"),
])
def test_a_bad_result_is_one_line_naming_the_function_and_the_block(
    fn: str, table: dict[str, Any], message: str,
) -> None:
    a = np.zeros((4, 4), "float32")
    with pytest.raises(UserFunctionError, match=message) as err:
        _compute(fn, a, table)
    assert "\n" not in str(err.value)


def test_a_file_function_travels_inside_a_task_pickled_plainly(tmp_path: Path) -> None:
    """distributed pickles a task with plain pickle: the function must still travel by
    value, to a process that has never seen its file (here: a fresh interpreter)."""
    import pickle
    import subprocess
    import sys

    src = tmp_path / "scale.py"
    src.write_text("FACTOR = 3\ndef scale(a):\n    return a * FACTOR\n")
    step = step_of({"map": f"{src}:scale"})
    arr = da.from_array(np.arange(6).reshape(2, 3), chunks=(1, 3))
    out = step.apply(arr, ArrayInfo.of(arr, ("y", "x")))
    graph = dict(out.__dask_graph__())
    payload = pickle.dumps(graph)  # plain pickle, as distributed does first
    src.unlink()  # gone from disk: the bytes must carry the code
    code = ("import pickle, sys, dask; g = pickle.loads(sys.stdin.buffer.read()); "
            f"print(dask.get(g, {out.__dask_keys__()[1][0]!r}).tolist())")
    done = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True,
                          cwd="/", check=False, env={"PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "[[9, 12, 15]]"


def test_a_function_that_cannot_load_on_a_worker_is_one_line() -> None:
    from hpcscale.ops.map import Shipped, run_block

    broken = Shipped(payload=b"not a pickle")
    with pytest.raises(UserFunctionError, match=r"^step 1 \(f\): at block \(0, 0\): cannot "
                       r"load f on this worker \(UnpicklingError: .*; python "):
        run_block(np.zeros((2, 2)), func=broken, kwargs={}, loop=(), starts={},
                  dims=("y", "x"), dtype=np.dtype("float64"), label="step 1 (f)", name="f",
                  halo=(0, 0), block_id=(0, 0))


def test_the_error_survives_pickling() -> None:
    import pickle

    err = UserFunctionError("step 1 (f): at block (0, 0): f raised ValueError: x")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is UserFunctionError
    assert str(back) == str(err)
    assert back.exit_code == 1
