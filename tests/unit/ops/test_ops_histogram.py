"""Histograms equal np.histogram, over the whole array and per index of the kept dims."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import apply_step
from hpcscale.errors import JobSpecError
from hpcscale.ops import MAX_BINS, ArrayInfo, parse_step

DIMS = ("t", "y", "x")



def run(table: dict[str, Any], a: np.ndarray, chunks: Any) -> Any:
    values = apply_step(table, a, chunks, DIMS)
    assert values.dtype == np.int64
    return values


def reference(a: np.ndarray, bins: int, rng: tuple[float, float], axes: tuple[int, ...]) -> Any:
    """np.histogram of every slice over ``axes``, kept dims first, bins last."""
    kept = [ax for ax in range(a.ndim) if ax not in axes]
    moved = np.moveaxis(a, kept, range(len(kept)))
    out = np.zeros((*moved.shape[: len(kept)], bins), dtype=np.int64)
    for idx in np.ndindex(*moved.shape[: len(kept)]):
        values = moved[idx]
        if values.dtype == bool:  # numpy converts with a warning; do it here, quietly
            values = values.astype(np.uint8)
        out[idx] = np.histogram(values, bins, rng)[0]
    return out


def tricky(shape: tuple[int, ...], lo: float, hi: float, bins: int, dtype: str = "f8") -> Any:
    """Values on every edge, just inside and outside, NaN, infinities, and random ones."""
    rng = np.random.default_rng(0)
    edges = np.linspace(lo, hi, bins + 1).astype(dtype)
    special = np.concatenate(
        [
            edges,
            np.nextafter(edges, np.inf, dtype=dtype),
            np.nextafter(edges, -np.inf, dtype=dtype),
            np.array([np.nan, np.inf, -np.inf, lo - 1, hi + 1], dtype=dtype),
        ]
    )
    a = rng.uniform(lo - (hi - lo) * 0.1, hi + (hi - lo) * 0.1, size=shape).astype(dtype)
    flat = a.reshape(-1)
    flat[rng.choice(flat.size, size=min(flat.size, special.size), replace=False)] = special[
        : min(flat.size, special.size)
    ]
    return a


@pytest.fixture(params=["batched", "row by row"])
def counting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways a block is counted: all rows at once, or numpy's histogram per row."""
    from hpcscale.ops import histogram

    monkeypatch.setattr(histogram, "_LONG_ROW", 1 if request.param == "row by row" else 1 << 62)


@pytest.mark.parametrize("dtype", ["f8", "f4", "f2"])
@pytest.mark.parametrize(
    "axis", [None, ["y", "x"], "t", ["t", "x"], [-1], ["t", "y", "x"]], ids=str
)
@pytest.mark.usefixtures("counting")
def test_equals_np_histogram_per_kept_index(axis: Any, dtype: str) -> None:
    a = tricky((6, 7, 9), 0.1, 0.7, 6, dtype)
    table: dict[str, Any] = {"histogram": 6, "range": [0.1, 0.7]}
    if axis is not None:
        table["axis"] = axis
    got = run(table, a, ((2, 3, 1), (4, 3), (5, 4)))
    axes = (
        (0, 1, 2)
        if axis is None
        else parse_step(table).resolve_axes(
            "axis", table["axis"], ArrayInfo(a.shape, a.dtype, DIMS, tuple((n,) for n in a.shape))
        )
    )
    np.testing.assert_array_equal(got, reference(a, 6, (0.1, 0.7), axes))


def test_right_edge_is_in_the_last_bin_and_nan_outside_are_dropped() -> None:
    a = np.array([0.0, 0.5, 1.0, 1.0, np.nan, -0.1, 1.1, np.inf, 0.25, 0.75])
    got = run({"histogram": 4, "range": [0, 1]}, a.reshape(2, 5), (1, 2))
    np.testing.assert_array_equal(got, [1, 1, 1, 3])
    np.testing.assert_array_equal(got, np.histogram(a, 4, (0.0, 1.0))[0])


@pytest.mark.parametrize("dtype", ["int16", "uint8", "bool"])
def test_integer_and_bool_inputs(dtype: str) -> None:
    a = np.random.default_rng(3).integers(0, 256, size=(5, 8)).astype(dtype)
    table = {"histogram": 7, "range": [0, 200], "axis": "y"}
    got = run(table, a, (2, 3))
    np.testing.assert_array_equal(got, reference(a, 7, (0.0, 200.0), (1,)))


def test_output_info_and_bin_coordinates() -> None:
    info = ArrayInfo((10, 20, 30), np.dtype("f4"), DIMS, ((5, 5), (20,), (10, 10, 10)))
    step = parse_step({"histogram": 4, "range": [-1, 1], "axis": ["y", "x"]})
    out = step.resolve(info)
    assert out.dims == ("t", "bin")
    assert out.shape == (10, 4)
    assert out.chunks == ((5, 5), (4,))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(step.bin_edges(), [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_array_equal(step.bin_centers(), [-0.75, -0.25, 0.25, 0.75])
    assert step.halo(info) == (0, 0, 0)
    whole = parse_step({"histogram": 4, "range": [-1, 1]}).resolve(info)
    assert (whole.dims, whole.shape, whole.chunks) == (("bin",), (4,), ((4,),))


# -- property test -------------------------------------------------------------------------------


@st.composite
def histogram_cases(draw: st.DrawFn) -> tuple[dict[str, Any], np.ndarray, Any, tuple[int, ...]]:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    bins = draw(st.integers(1, 12))
    lo = draw(st.sampled_from([-3.0, 0.0, 0.1, 1e-3]))
    hi = lo + draw(st.sampled_from([0.3, 1.0, 7.5, 100.0]))
    axes = draw(st.sets(st.integers(0, ndim - 1), min_size=1).map(lambda s: tuple(sorted(s))))
    table: dict[str, Any] = {"histogram": bins, "range": [lo, hi]}
    if draw(st.booleans()) or len(axes) < ndim:
        table["axis"] = [DIMS[a] for a in axes]
    dtype = draw(st.sampled_from(["f8", "f4", "i4"]))
    a = tricky(shape, lo, hi, bins, "f8")
    if dtype == "i4":
        a = np.nan_to_num(a, posinf=1e6, neginf=-1e6).round()
    return table, a.astype(dtype), chunks, axes


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(histogram_cases())
def test_property_equals_np_histogram(case: Any) -> None:
    table, a, chunks, axes = case
    got = run(table, a, chunks)
    np.testing.assert_array_equal(
        got, reference(a, table["histogram"], tuple(table["range"]), axes)
    )


def test_many_rows_are_counted_in_batches() -> None:
    # More values per block than one batch, so the row batching is exercised.
    a = np.random.default_rng(5).normal(size=(4, 600, 600)).astype("f4")
    got = run({"histogram": 9, "range": [-2, 2], "axis": ["y", "x"]}, a, (2, 600, 600))
    np.testing.assert_array_equal(got, reference(a, 9, (-2.0, 2.0), (1, 2)))
    got = run({"histogram": 9, "range": [-2, 2], "axis": ["t"]}, a[:, :50, :50], (3, 50, 50))
    np.testing.assert_array_equal(got, reference(a[:, :50, :50], 9, (-2.0, 2.0), (0,)))


# -- refusals ------------------------------------------------------------------------------------

INFO = ArrayInfo((6, 20, 30), np.dtype("f4"), DIMS, ((3, 3), (10, 10), (15, 15)))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            {"histogram": 10},
            r"^step 1 \(histogram\): missing required key 'range' \(\[lo, hi\], two finite numbers",
        ),
        (
            {"histogram": 10, "range": [1, 1]},
            r"range must be \[lo, hi\], two finite numbers with lo < hi, got \[1.0, 1.0\]",
        ),
        ({"histogram": 10, "range": [2, 1]}, r"range must be .*lo < hi"),
        ({"histogram": 10, "range": [0, float("inf")]}, r"range must be .* got \[0, inf\]"),
        ({"histogram": 10, "range": [float("nan"), 1]}, r"range must be .* got \[nan, 1\]"),
        ({"histogram": 10, "range": [0, 1, 2]}, r"range must be .* got \[0, 1, 2\]"),
        (
            {"histogram": 0, "range": [0, 1]},
            rf"histogram must be the number of bins, an integer between 1 and {MAX_BINS}, got 0",
        ),
        ({"histogram": MAX_BINS + 1, "range": [0, 1]}, r"histogram must be the number of bins"),
        ({"histogram": 2.0, "range": [0, 1]}, r"histogram must be the number of bins.*got 2$"),
        (
            {"histogram": 4, "range": [0, 1], "bins": 3},
            r"unknown key 'bins'; valid keys: histogram, range, axis$",
        ),
    ],
)
def test_parse_refuses(table: dict[str, Any], message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        parse_step(table, 1)


@pytest.mark.parametrize(
    ("table", "info", "message"),
    [
        (
            {"histogram": 4, "range": [0, 1], "axis": ["y", "z"]},
            INFO,
            r"^step 1 \(histogram\): axis 'z' is not a dim; dims are \(t, y, x\)$",
        ),
        (
            {"histogram": 4, "range": [0, 1], "axis": "t"},
            ArrayInfo((3, 4), np.dtype("f8"), ("t", "bin"), ((3,), (4,))),
            r"the output gets a dim named 'bin', but the input already has one it keeps",
        ),
        (
            {"histogram": 5000, "range": [0, 1]},
            ArrayInfo((3,), np.dtype("f2"), ("x",), ((3,),)),
            r"5000 bins over \[0.0, 1.0\] in float16: .*",
        ),
        (
            {"histogram": 4, "range": [0, 1]},
            ArrayInfo((3,), np.dtype("c8"), ("x",), ((3,),)),
            r"input dtype complex64 is not supported",
        ),
    ],
)
def test_resolve_refuses(table: dict[str, Any], info: ArrayInfo, message: str) -> None:
    with pytest.raises(JobSpecError, match=message) as err:
        parse_step(table, 1).resolve(info)
    assert "\n" not in str(err.value)


def test_bin_dim_may_be_reduced() -> None:
    a = np.arange(12.0).reshape(3, 4) / 12
    arr = da.from_array(a, chunks=2)
    info = ArrayInfo.of(arr, ("t", "bin"))
    step = parse_step({"histogram": 3, "range": [0, 1], "axis": "bin"})
    assert step.resolve(info).dims == ("t", "bin")
    np.testing.assert_array_equal(
        step.apply(arr, info).compute(), [np.histogram(row, 3, (0.0, 1.0))[0] for row in a]
    )
