"""Step parsing, the step contract (resolve/halo/apply/to_table), and build_graph."""

from __future__ import annotations

import tomllib
from typing import Any

import dask.array as da
import numpy as np
import pydantic
import pytest
import scipy.ndimage as ndi
import tomli_w

from hpcscale.errors import JobSpecError
from hpcscale.ops import (
    ArrayInfo,
    GaussianFilter,
    Histogram,
    Reduction,
    SizeFilter,
    build_graph,
    parse_step,
    parse_steps,
    resolve_steps,
)

DIMS = ("t", "y", "x")



TABLES: list[dict[str, Any]] = [
    {"filter": "gaussian", "sigma": [0.0, 2.0, 2.0], "axes": ["t", "y", "x"]},
    {"filter": "gaussian", "sigma": 1.5, "radius": [3, 2], "mode": "wrap", "axes": [-2, -1]},
    {"filter": "gaussian_gradient_magnitude", "sigma": 1.0, "truncate": 3.0, "cval": -1.0},
    {"filter": "gaussian_laplace", "sigma": [1.0, 2.0, 0.5], "mode": "constant"},
    {"filter": "median", "size": [1, 3, 4], "origin": [0, 1, -2]},
    {"filter": "uniform", "size": 5, "mode": "mirror", "axes": ["x"]},
    {"filter": "minimum", "size": 2},
    {"filter": "maximum", "size": 3, "mode": "nearest"},
    {"filter": "percentile", "percentile": 90.0, "size": 3},
    {"filter": "sobel", "axis": "y", "axes": ["y", "x"]},
    {"filter": "prewitt", "axis": 0},
    {"filter": "laplace", "mode": "wrap"},
    {"reduce": "mean", "axis": ["t"]},
    {"reduce": "std", "axis": "t", "ddof": 1, "keepdims": True},
    {"reduce": "quantile", "axis": ["y", "x"], "q": 0.9},
    {"reduce": "count"},
    {"histogram": 64, "range": [0.0, 1.0], "axis": ["y", "x"]},
    {"histogram": 8, "range": [-1.0, 1.0]},
]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: next(iter(t.values())))
def test_to_table_and_describe_round_trip(table: dict[str, Any]) -> None:
    step = parse_step(table, 4)
    assert step.to_table() == table  # defaults are left out, the rest comes back as given
    assert next(iter(step.to_table())) in ("filter", "reduce", "histogram")
    assert parse_step(step.to_table()) == step
    # describe() is a TOML inline table; a job spec printed with tomli_w parses back too.
    assert tomllib.loads(f"step = {step.describe()}")["step"] == table
    text = tomli_w.dumps({"steps": [step.to_table()]})
    assert parse_steps(tomllib.loads(text)["steps"]) == [step]


def test_step_classes_by_kind() -> None:
    assert isinstance(parse_step({"filter": "gaussian", "sigma": 1}), GaussianFilter)
    assert isinstance(parse_step({"filter": "median", "size": 3}), SizeFilter)
    assert isinstance(parse_step({"reduce": "sum"}), Reduction)
    assert isinstance(parse_step({"histogram": 3, "range": [0, 1]}), Histogram)
    assert parse_step({"histogram": 3, "range": [0, 1]}).name == "histogram"
    assert parse_step({"filter": "median", "size": 3}).name == "median"


def test_steps_are_frozen_hashable_and_equal_regardless_of_number() -> None:
    a = parse_step({"filter": "median", "size": [3, 3]}, 1)
    b = parse_step({"filter": "median", "size": [3, 3]}, 7)
    assert a == b
    assert hash(a) == hash(b)
    assert a != parse_step({"filter": "median", "size": [3, 5]}, 1)
    with pytest.raises(pydantic.ValidationError):
        a.size = 5
    assert a.label() == "step 1 (median)"
    assert b.numbered(3).label() == "step 3 (median)"
    assert SizeFilter(filter="median", size=3).label() == "median step"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, r"^step 2 must have exactly one of the keys filter, reduce, histogram, map "
             r".*found none$"),
        ({"filter": "median", "reduce": "sum"}, r"found filter, reduce$"),
        ({"sigma": 1}, r"found none"),
        (["filter"], r"^step 2 must be a table, got \['filter'\]$"),
        ({"filter": 3}, r"^step 2: unknown filter 3; valid filters: gaussian"),
        ({"reduce": ["sum"]}, r"^step 2: unknown reduction \['sum'\]"),
    ],
)
def test_kind_refusals(table: Any, message: str) -> None:
    with pytest.raises(JobSpecError, match=message):
        parse_step(table, 2)


def test_parse_steps_numbers_from_one() -> None:
    with pytest.raises(JobSpecError, match=r"^step 2 \(median\): size must be"):
        parse_steps([{"reduce": "mean"}, {"filter": "median", "size": 0}])


def test_several_problems_in_one_line() -> None:
    with pytest.raises(JobSpecError) as err:
        parse_step({"filter": "median", "size": 0, "origin": "a", "foo": 1}, 1)
    message = str(err.value)
    assert "\n" not in message
    assert "size must be" in message
    assert "origin must be an integer per axis, got 'a'" in message
    assert "unknown key 'foo'" in message


# -- the contract ------------------------------------------------------------------------------


def test_array_info_checks_itself() -> None:
    ArrayInfo((4, 5), np.dtype("f8"), ("y", "x"), ((2, 2), (5,)))
    with pytest.raises(ValueError, match="disagree in length"):
        ArrayInfo((4, 5), np.dtype("f8"), ("y",), ((2, 2), (5,)))
    with pytest.raises(ValueError, match="do not add up"):
        ArrayInfo((4, 5), np.dtype("f8"), ("y", "x"), ((2, 1), (5,)))
    with pytest.raises(ValueError, match="repeat a name"):
        ArrayInfo((4, 5), np.dtype("f8"), ("y", "y"), ((4,), (5,)))
    info = ArrayInfo.of(da.zeros((4, 5), chunks=2, dtype="i2"), ["y", "x"])
    assert info == ArrayInfo((4, 5), np.dtype("i2"), ("y", "x"), ((2, 2), (2, 2, 1)))


def test_apply_refuses_an_array_that_does_not_match_its_info() -> None:
    arr = da.zeros((4, 5), chunks=2)
    info = ArrayInfo((4, 5), np.dtype("f8"), ("y", "x"), ((4,), (5,)))
    with pytest.raises(ValueError, match="does not match"):
        parse_step({"reduce": "sum"}).apply(arr, info)
    with pytest.raises(ValueError, match="does not match"):
        build_graph(arr, info, [])


@pytest.mark.parametrize("table", TABLES, ids=lambda t: next(iter(t.values())))
def test_resolve_describes_the_real_output(table: dict[str, Any]) -> None:
    a = np.random.default_rng(0).random((6, 9, 10)).astype("f4")
    arr = da.from_array(a, chunks=(2, 4, 5))
    info = ArrayInfo.of(arr, DIMS)
    step = parse_step(table)
    out_info = step.resolve(info)
    out = step.apply(arr, info)
    assert (out.shape, out.dtype, out.chunks) == (out_info.shape, out_info.dtype, out_info.chunks)
    assert len(out_info.dims) == out.ndim
    assert len(step.halo(info)) == info.ndim
    assert out.compute().shape == out_info.shape


# -- build_graph -------------------------------------------------------------------------------


def test_filter_then_reduction_is_one_graph_with_the_right_values() -> None:
    a = np.random.default_rng(1).normal(size=(5, 12, 14))
    arr = da.from_array(a, chunks=(2, 5, 7))
    info = ArrayInfo.of(arr, DIMS)
    steps = parse_steps(
        [
            {"filter": "gaussian", "sigma": [0, 1.5, 1.5]},
            {"reduce": "max", "axis": ["y", "x"]},
            {"histogram": 4, "range": [0, 1], "axis": "t"},
        ]
    )
    out, out_info = build_graph(arr, info, steps)
    assert out_info.dims == ("bin",)
    assert out_info == resolve_steps(info, steps)[-1]
    assert isinstance(out, da.Array)  # lazy: nothing computed, nothing written
    smoothed = ndi.gaussian_filter(a, [0, 1.5, 1.5])
    maxima = smoothed.max(axis=(1, 2))
    np.testing.assert_array_equal(out.compute(), np.histogram(maxima, 4, (0.0, 1.0))[0])


def test_all_steps_are_checked_before_any_graph_is_built() -> None:
    calls: list[int] = []

    def counting(block: np.ndarray) -> np.ndarray:
        calls.append(1)
        return block

    # dtype and meta given, so dask does not call it to learn them.
    arr = da.ones((6, 8), chunks=3).map_blocks(counting, dtype="f8", meta=np.empty((0, 0)))
    info = ArrayInfo.of(arr, ("y", "x"))
    steps = parse_steps([{"filter": "median", "size": 3}, {"reduce": "mean", "axis": "t"}])
    with pytest.raises(JobSpecError, match=r"^step 2 \(mean\): axis 't' is not a dim"):
        build_graph(arr, info, steps)
    assert calls == []
    infos = resolve_steps(info, steps[:1])
    # chunks merged towards 4x the median's reach of 1 (see ops.filters.MERGE_REACH)
    assert infos == [ArrayInfo((6, 8), np.dtype("f8"), ("y", "x"), ((6,), (8,)))]


def test_no_steps_is_the_input() -> None:
    arr = da.ones((3, 4), chunks=2)
    info = ArrayInfo.of(arr, ("y", "x"))
    assert build_graph(arr, info, []) == (arr, info)
