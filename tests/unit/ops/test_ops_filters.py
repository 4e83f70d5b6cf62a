"""Chunked filters equal scipy.ndimage on the whole array, for every filter and mode."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import dask.array as da
import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from helpers import apply_step
from hpcscale.errors import JobSpecError
from hpcscale.ops import FILTERS, MODES, ArrayInfo, filters, parse_step

DIMS3 = ("t", "y", "x")



@pytest.fixture(autouse=True, scope="module")
def _overlaps_as_small_as_they_come() -> Iterator[None]:
    """Merge chunks only up to the reach, as the overlap needs: the tests choose chunks
    as small as the reach, where an overlap one sample short would show. Merging
    further (MERGE_REACH) is tested on its own below."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(filters, "MERGE_REACH", 1)
        yield


def run(table: dict[str, Any], a: np.ndarray, chunks: Any, dims: tuple[str, ...] = DIMS3) -> Any:
    """Apply one step to ``a`` chunked as given; check the output info; return the values."""
    return apply_step(table, a, chunks, dims)


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    """Exact for integers and bool; floats within rounding (uniform_filter's running sum
    depends on where a line starts, so blocks differ from the whole array in the last bit)."""
    assert got.dtype == want.dtype
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want)
        return
    rtol = 1e-12 if want.dtype == np.float64 else 1e-5
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


# Each filter with non-trivial parameters, and the scipy call on the whole array.
CASES: dict[str, tuple[dict[str, Any], Callable[..., np.ndarray]]] = {
    "gaussian": (
        {"sigma": [0.7, 1.5, 1.0]},
        lambda a, **kw: ndi.gaussian_filter(a, [0.7, 1.5, 1.0], **kw),
    ),
    "gaussian_gradient_magnitude": (
        {"sigma": [1.0, 0.5, 1.2], "truncate": 3.0},
        lambda a, **kw: ndi.gaussian_gradient_magnitude(a, [1.0, 0.5, 1.2], truncate=3.0, **kw),
    ),
    "gaussian_laplace": (
        {"sigma": 0.8, "radius": [1, 2, 3]},
        lambda a, **kw: ndi.gaussian_laplace(a, 0.8, radius=[1, 2, 3], **kw),
    ),
    "median": (
        {"size": [2, 3, 4], "origin": [-1, 1, 1]},
        lambda a, **kw: ndi.median_filter(a, size=[2, 3, 4], origin=[-1, 1, 1], **kw),
    ),
    "uniform": (
        {"size": [3, 4, 2], "origin": [0, -2, 0]},
        lambda a, **kw: ndi.uniform_filter(a, size=[3, 4, 2], origin=[0, -2, 0], **kw),
    ),
    "minimum": ({"size": 3}, lambda a, **kw: ndi.minimum_filter(a, size=3, **kw)),
    "maximum": (
        {"size": [1, 4, 3], "origin": [0, 1, -1]},
        lambda a, **kw: ndi.maximum_filter(a, size=[1, 4, 3], origin=[0, 1, -1], **kw),
    ),
    "percentile": (
        {"percentile": 30, "size": [2, 3, 3]},
        lambda a, **kw: ndi.percentile_filter(a, 30, size=[2, 3, 3], **kw),
    ),
    "sobel": ({"axis": "y"}, lambda a, **kw: ndi.sobel(a, axis=1, **kw)),
    "prewitt": ({}, ndi.prewitt),
    "laplace": ({}, ndi.laplace),
}

# Ragged chunks; and chunks smaller than every filter's reach (the step must merge them).
CHUNKINGS = [((3, 4), (4, 4, 1), (5, 6)), ((2, 1, 4), (1, 1, 7), (3, 1, 2, 5))]
SHAPE = (7, 9, 11)


def test_cases_cover_every_filter() -> None:
    assert set(CASES) == set(FILTERS)


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=["ragged", "tiny"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", FILTERS)
def test_every_filter_and_mode_equals_scipy(name: str, mode: str, chunks: Any) -> None:
    params, reference = CASES[name]
    a = np.random.default_rng(7).normal(size=SHAPE)
    got = run({"filter": name, **params, "mode": mode, "cval": 0.25}, a, chunks)
    assert_same(got, reference(a, mode=mode, cval=0.25))


@pytest.mark.parametrize("dtype", ["int16", "uint8", "int64", "float32"])
@pytest.mark.parametrize(
    "name", ["gaussian", "gaussian_gradient_magnitude", "uniform", "median", "sobel", "laplace"]
)
def test_other_dtypes_equal_scipy_with_its_dtype(name: str, dtype: str) -> None:
    params, reference = CASES[name]
    a = np.random.default_rng(3).integers(0, 200, size=SHAPE).astype(dtype)
    got = run({"filter": name, **params, "mode": "wrap"}, a, CHUNKINGS[0])
    want = reference(a, mode="wrap")
    assert got.dtype == np.dtype(dtype)
    assert_same(got, want)


@pytest.mark.parametrize("name", ["median", "minimum", "maximum"])
def test_rank_filters_accept_bool(name: str) -> None:
    a = np.random.default_rng(4).random(SHAPE) > 0.5
    got = run({"filter": name, "size": 3, "mode": "mirror"}, a, CHUNKINGS[1])
    np.testing.assert_array_equal(got, getattr(ndi, f"{name}_filter")(a, size=3, mode="mirror"))


def sliced(fn: Callable[[np.ndarray], np.ndarray], a: np.ndarray, axes: tuple[int, ...]) -> Any:
    """Reference for a restricted filter: ``fn`` on every slice along the other axes."""
    out = np.empty_like(a)
    others = [ax for ax in range(a.ndim) if ax not in axes]
    for idx in np.ndindex(*(a.shape[ax] for ax in others)):
        index: list[Any] = [slice(None)] * a.ndim
        for ax, i in zip(others, idx, strict=True):
            index[ax] = i
        out[tuple(index)] = fn(a[tuple(index)])
    return out


RESTRICTED: list[tuple[dict[str, Any], tuple[int, ...], Callable[..., np.ndarray]]] = [
    (
        {"filter": "gaussian", "sigma": [1.0, 2.0], "axes": ["y", "x"]},
        (1, 2),
        lambda s, **kw: ndi.gaussian_filter(s, [1.0, 2.0], **kw),
    ),
    (
        {"filter": "gaussian_gradient_magnitude", "sigma": [1.0, 0.6], "axes": ["t", "x"]},
        (0, 2),
        lambda s, **kw: ndi.gaussian_gradient_magnitude(s, [1.0, 0.6], **kw),
    ),
    (
        {"filter": "gaussian_laplace", "sigma": 1.0, "radius": [2, 1], "axes": ["y", "x"]},
        (1, 2),
        lambda s, **kw: ndi.gaussian_laplace(s, 1.0, radius=[2, 1], **kw),
    ),
    (
        {"filter": "median", "size": 3, "origin": [1, -1], "axes": [-1, 0]},
        (0, 2),
        lambda s, **kw: ndi.median_filter(s, size=3, origin=[1, -1], **kw),
    ),
    (
        {"filter": "uniform", "size": 4, "axes": ["x"]},
        (2,),
        lambda s, **kw: ndi.uniform_filter(s, size=4, **kw),
    ),
    (
        {"filter": "percentile", "percentile": 75, "size": [2, 3], "axes": ["y", "x"]},
        (1, 2),
        lambda s, **kw: ndi.percentile_filter(s, 75, size=[2, 3], **kw),
    ),
    (
        {"filter": "sobel", "axis": "y", "axes": ["y", "x"]},
        (1, 2),
        lambda s, **kw: ndi.sobel(s, axis=0, **kw),
    ),
    (
        {"filter": "prewitt", "axis": "t", "axes": ["t", "x"]},
        (0, 2),
        lambda s, **kw: ndi.prewitt(s, axis=0, **kw),
    ),
    ({"filter": "sobel", "axis": -1, "axes": ["x"]}, (2,), ndi.sobel),
    ({"filter": "laplace", "axes": ["t", "y"]}, (0, 1), ndi.laplace),
]


@pytest.mark.parametrize("dtype", ["float64", "int16"])
@pytest.mark.parametrize(
    ("table", "axes", "reference"), RESTRICTED, ids=[str(i) for i in range(len(RESTRICTED))]
)
def test_restricted_axes_filter_each_slice(
    table: dict[str, Any], axes: tuple[int, ...], reference: Callable[..., Any], dtype: str
) -> None:
    a = (np.random.default_rng(5).normal(size=SHAPE) * 50).astype(dtype)
    for mode in ("nearest", "wrap"):
        got = run({**table, "mode": mode}, a, CHUNKINGS[0])
        want = sliced(lambda s, mode=mode: reference(s, mode=mode), a, axes)
        assert_same(got, want)


# -- reach, halo and chunks ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6])
def test_even_and_odd_sizes_with_every_origin_are_exact(size: int) -> None:
    """Chunks as small as the reach: an overlap one sample short would show."""
    a = np.random.default_rng(size).normal(size=(23,))
    for origin in range(-(size // 2), (size - 1) // 2 + 1):
        reach = max(size // 2 + origin, (size - 1) // 2 - origin)
        chunks = max(reach, 1)  # the last chunk is ragged, often smaller than the reach
        for name in ("median", "maximum", "uniform"):
            table = {
                "filter": name,
                "size": size,
                "origin": origin,
                "mode": "constant",
                "cval": 9.0,
            }
            info = ArrayInfo.of(da.from_array(a, chunks=chunks), ("x",))
            assert parse_step(table).halo(info) == (reach,)
            want = getattr(ndi, f"{name}_filter")(
                a, size=size, origin=origin, mode="constant", cval=9.0
            )
            assert_same(run(table, a, chunks, ("x",)), want)


@pytest.mark.parametrize(
    ("table", "halo"),
    [
        ({"filter": "gaussian", "sigma": [0, 1.2, 2]}, (0, 5, 8)),
        ({"filter": "gaussian", "sigma": [0, 1.2, 2], "truncate": 2.0}, (0, 2, 4)),
        ({"filter": "gaussian_laplace", "sigma": [1, 1, 1], "radius": [0, 3, 1]}, (0, 3, 1)),
        ({"filter": "gaussian", "sigma": 1e-16}, (0, 0, 0)),
        ({"filter": "median", "size": [1, 4, 5], "origin": [0, 1, -2]}, (0, 3, 4)),
        ({"filter": "sobel", "axes": ["y", "x"]}, (0, 1, 1)),
        ({"filter": "laplace"}, (1, 1, 1)),
    ],
)
def test_halo_is_the_real_reach(table: dict[str, Any], halo: tuple[int, ...]) -> None:
    info = ArrayInfo((20, 30, 40), np.dtype("f4"), DIMS3, ((10, 10), (15, 15), (20, 20)))
    step = parse_step(table)
    assert step.halo(info) == halo
    assert step.resolve(info).chunks == info.chunks  # chunks >= reach: unchanged


def test_chunks_are_merged_towards_four_times_the_reach_within_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(filters, "MERGE_REACH", 4)
    # gaussian sigma 2 reaches 8: 8-plane chunks would be filtered as 24 planes
    info = ArrayInfo((64, 2048, 2048), np.dtype("f4"), DIMS3,
                     ((8,) * 8, (512,) * 4, (512,) * 4))
    step = parse_step({"filter": "gaussian", "sigma": 2.0})
    chunks = step.resolve(info).chunks
    assert chunks[0] == (32, 32)  # 4 x the reach
    assert chunks[1:] == info.chunks[1:]  # 512 >= 32 already
    assert step.input_chunks(info) == chunks
    # the budget: merging z to 32 planes of 4096 x 4096 would exceed it; the
    # overlap's minimum (the reach) still holds
    big = ArrayInfo((64, 4096, 4096), np.dtype("f4"), DIMS3, ((8,) * 8, (4096,), (4096,)))
    assert step.resolve(big).chunks[0] == (8,) * 8
    # and the numbers are still scipy's
    a = np.random.default_rng(3).normal(size=(24, 20, 18)).astype("f4")
    got = run({"filter": "gaussian", "sigma": [2.0, 1.0, 0.5]}, a, (3, 5, 18))
    assert_same(got, ndi.gaussian_filter(a, sigma=[2.0, 1.0, 0.5]))


def test_one_chunk_axes_get_no_overlap_and_small_chunks_are_merged() -> None:
    info = ArrayInfo((8, 30), np.dtype("f8"), ("y", "x"), ((8,), (2, 2, 10, 10, 6)))
    step = parse_step({"filter": "gaussian", "sigma": 1.0})  # reach 4
    assert step.halo(info) == (0, 4)
    chunks = step.resolve(info).chunks
    assert chunks[0] == (8,)
    assert min(chunks[1]) >= 4
    assert sum(chunks[1]) == 30
    assert step.input_chunks(info) == chunks


def test_reach_equal_to_the_length_is_exact() -> None:
    a = np.random.default_rng(1).normal(size=(8, 8))
    for mode in MODES:
        got = run({"filter": "gaussian", "sigma": 2.0, "mode": mode}, a, (3, 5), ("y", "x"))
        assert_same(got, ndi.gaussian_filter(a, 2.0, mode=mode))


# -- property test -------------------------------------------------------------------------------


@st.composite
def filter_cases(draw: st.DrawFn) -> tuple[dict[str, Any], np.ndarray, tuple[tuple[int, ...], ...]]:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(_chunking(n)) for n in shape)
    name = draw(st.sampled_from(FILTERS))
    table: dict[str, Any] = {"filter": name, "mode": draw(st.sampled_from(MODES))}
    table["cval"] = draw(st.sampled_from([0.0, -1.5]))
    if name.startswith("gaussian"):
        table["sigma"] = draw(
            st.lists(st.sampled_from([0.0, 0.4, 1.0, 1.7]), min_size=ndim, max_size=ndim)
        )
        table["truncate"] = draw(st.sampled_from([1.0, 2.5, 4.0]))
    elif name in ("median", "uniform", "minimum", "maximum", "percentile"):
        sizes = draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim))
        table["size"] = sizes
        table["origin"] = [draw(st.integers(-(s // 2), (s - 1) // 2)) for s in sizes]
        if name == "percentile":
            table["percentile"] = draw(st.sampled_from([0, 20, 50, 100]))
    elif name in ("sobel", "prewitt"):
        table["axis"] = draw(st.integers(-ndim, ndim - 1))
    dtype = draw(st.sampled_from(["float64", "int32"]))
    seed = draw(st.integers(0, 2**16))
    a = (np.random.default_rng(seed).normal(size=shape) * 20).astype(dtype)
    return table, a, chunks


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


def _scipy(table: dict[str, Any], a: np.ndarray) -> np.ndarray:
    name, kw = table["filter"], {"mode": table["mode"], "cval": table["cval"]}
    if name.startswith("gaussian"):
        fn = ndi.gaussian_filter if name == "gaussian" else getattr(ndi, name)
        return fn(a, table["sigma"], truncate=table["truncate"], **kw)
    if name == "percentile":
        return ndi.percentile_filter(
            a, table["percentile"], size=table["size"], origin=table["origin"], **kw
        )
    if "size" in table:
        return getattr(ndi, f"{name}_filter")(a, size=table["size"], origin=table["origin"], **kw)
    if name in ("sobel", "prewitt"):
        return getattr(ndi, name)(a, table["axis"], **kw)
    return ndi.laplace(a, **kw)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filter_cases())
def test_property_equals_scipy_or_refuses_a_too_long_reach(case: Any) -> None:
    table, a, chunks = case
    step = parse_step(table)
    info = ArrayInfo.of(da.from_array(a, chunks=chunks), DIMS3[: a.ndim])
    reach = _reach(table, a.ndim)
    if any(r > n for r, n in zip(reach, a.shape, strict=True)):
        event("refused: reach longer than a dim")
        with pytest.raises(JobSpecError, match=r"reaches \d+ samples along dim"):
            step.resolve(info)
        return
    event("computed")
    assert_same(run(table, a, chunks, DIMS3), _scipy(table, a))


def _reach(table: dict[str, Any], ndim: int) -> tuple[int, ...]:
    """The reach, computed independently of the implementation (impulse response)."""
    probe = np.zeros((21,) * ndim)
    probe[(10,) * ndim] = 1.0
    spread = _scipy({**table, "mode": "constant", "cval": 0.0}, probe) != 0
    if table["filter"] in ("minimum", "percentile", "median"):
        # An impulse does not survive these; use the window of a maximum filter instead.
        spread = _scipy({**table, "filter": "maximum", "mode": "constant", "cval": 0.0}, probe) != 0
    idx = np.nonzero(spread)
    return tuple(int(max(10 - i.min(), i.max() - 10)) if i.size else 0 for i in idx)


# -- refusals ------------------------------------------------------------------------------------

INFO = ArrayInfo((6, 20, 30), np.dtype("f4"), DIMS3, ((3, 3), (10, 10), (15, 15)))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"filter": "gaussian", "sigma": -1},
            r"^step 1 \(gaussian\): sigma must be a finite number >= 0 per axis, got -1$",
        ),
        (
            {"filter": "gaussian", "sigma": [1, float("nan")]},
            r"sigma must be a finite .*got \[1, nan\]",
        ),
        (
            {"filter": "gaussian", "sigma": float("inf")},
            r"sigma must be a finite number >= 0 per axis, got inf",
        ),
        ({"filter": "gaussian", "sigma": True}, r"sigma must be .* got true"),
        ({"filter": "gaussian", "sigma": "2"}, r"sigma must be .* got '2'"),
        ({"filter": "gaussian"}, r"missing required key 'sigma' \(a finite number >= 0 per axis\)"),
        (
            {"filter": "gaussian", "sigma": 1, "truncate": 0},
            r"truncate must be a finite number > 0, got 0",
        ),
        (
            {"filter": "gaussian", "sigma": 1, "truncate": 3, "radius": 2},
            r"truncate or radius, not both",
        ),
        (
            {"filter": "gaussian", "sigma": 1, "radius": -1},
            r"radius must be an integer >= 0 per axis, got -1",
        ),
        (
            {"filter": "median", "size": 0},
            r"^step 1 \(median\): size must be an integer >= 1 per axis, got 0$",
        ),
        (
            {"filter": "uniform", "size": [3, -2]},
            r"size must be an integer >= 1 per axis, got \[3, -2\]",
        ),
        ({"filter": "maximum", "size": 2.5}, r"size must be an integer >= 1 per axis, got 2.5"),
        (
            {"filter": "percentile", "size": 3, "percentile": 101},
            r"percentile must be a finite number between 0 and 100, got 101",
        ),
        ({"filter": "percentile", "size": 3}, r"missing required key 'percentile'"),
        (
            {"filter": "median", "size": 3, "mode": "periodic"},
            r"mode must be one of reflect, nearest, mirror, constant, wrap, got 'periodic'",
        ),
        (
            {"filter": "median", "size": 3, "cval": float("nan")},
            r"cval must be a finite number, got nan",
        ),
        (
            {"filter": "median", "sigma": 3},
            r"unknown key 'sigma'; valid keys: filter, size, origin, mode, cval, axes$",
        ),
        (
            {"filter": "gaussian", "sigma": 1, "size": 3},
            r"unknown key 'size'; valid keys: filter, sigma, truncate, radius, mode, cval, axes$",
        ),
        (
            {"filter": "sobel", "size": 3},
            r"unknown key 'size'; valid keys: filter, axis, mode, cval, axes$",
        ),
        (
            {"filter": "blur", "sigma": 1},
            r"^step 1: unknown filter 'blur'; valid filters: gaussian, .*laplace$",
        ),
        (
            {"filter": "laplace", "axes": "x"},
            r"axes must be a list of dim names or integers, got 'x'",
        ),
    ],
)
def test_parse_refuses(table: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError, match=message) as err:
        parse_step(table, 1)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    ("table", "info", "message"),
    [
        (
            {"filter": "gaussian", "sigma": [0, 2, 2], "axes": ["y", "z"]},
            INFO,
            r"^step 3 \(gaussian\): axes 'z' is not a dim; dims are \(t, y, x\)$",
        ),
        (
            {"filter": "median", "size": 3, "axes": [3]},
            INFO,
            r"axes 3 is out of range for 3 dims \(t, y, x\)",
        ),
        ({"filter": "median", "size": 3, "axes": ["x", -1]}, INFO, r"axes names dim 'x' twice"),
        ({"filter": "median", "size": 3, "axes": []}, INFO, r"axes must name at least one dim"),
        (
            {"filter": "gaussian", "sigma": [1, 1]},
            INFO,
            r"sigma has 2 values but the step acts on 3 dims \(t, y, x\); "
            r"give one value, or one per dim",
        ),
        (
            {"filter": "median", "size": [3, 3, 3], "axes": ["y", "x"]},
            INFO,
            r"size has 3 values .* 2 dims \(y, x\)",
        ),
        (
            {"filter": "gaussian", "sigma": [2, 1, 1]},
            INFO,
            r"the filter reaches 8 samples along dim 't', more than its length 6; "
            r"use a smaller sigma or leave 't' out of axes",
        ),
        (
            {"filter": "median", "size": [15, 1, 1]},
            INFO,
            r"reaches 7 samples .* use a smaller size",
        ),
        (
            {"filter": "median", "size": 4, "origin": 2},
            INFO,
            r"origin 2 is out of range for size 4 along dim 't': must be between -2 and 1",
        ),
        (
            {"filter": "sobel", "axis": "t", "axes": ["y", "x"]},
            INFO,
            r"axis 't' \(the derivative's dim\) must be one of axes \(y, x\)",
        ),
        ({"filter": "prewitt", "axis": "time"}, INFO, r"axis 'time' is not a dim"),
        (
            {"filter": "median", "size": 3},
            ArrayInfo((4, 0), np.dtype("f8"), ("y", "x"), ((4,), (0,))),
            r"input array is empty, shape \(4, 0\)",
        ),
        (
            {"filter": "median", "size": 3},
            ArrayInfo((4,), np.dtype("f2"), ("x",), ((4,),)),
            r"input dtype float16 is not supported; "
            r"the input must be bool, integer or float32/float64",
        ),
        (
            {"filter": "gaussian", "sigma": 1},
            ArrayInfo((4,), np.dtype("?"), ("x",), ((4,),)),
            r"input dtype bool is not supported; the input must be integer or float32/float64",
        ),
        (
            {"filter": "uniform", "size": 3},
            ArrayInfo((4,), np.dtype("c8"), ("x",), ((4,),)),
            r"input dtype complex64 is not supported",
        ),
        (
            {"filter": "laplace"},
            ArrayInfo((4,), np.dtype("U3"), ("x",), ((4,),)),
            r"input dtype <U3 is not supported",
        ),
        (
            {"filter": "laplace"},
            ArrayInfo((4,), np.dtype("O"), ("x",), ((4,),)),
            r"input dtype object is not supported",
        ),
    ],
)
def test_resolve_refuses_before_anything_runs(
    table: dict[str, Any], info: ArrayInfo, message: str
) -> None:
    step = parse_step(table, 3)
    for check in (step.resolve, step.halo):
        with pytest.raises(JobSpecError, match=message) as err:
            check(info)
        assert "\n" not in str(err.value)
