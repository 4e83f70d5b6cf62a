"""Batched reads: several stored chunks per task along a reduction's reduced axes,
so dask's per-task cost does not dominate small stored chunks (issue 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import Cli, write_profile
from hpcscale.ops import ArrayInfo, parse_steps, read_batch
from hpcscale.ops import steps as steps_module

MiB = 1 << 20


@pytest.fixture(autouse=True)
def few_tasks_batch_too(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small test inputs are batched as if they had many chunks (but see
    test_few_chunks_are_not_batched_and_batches_keep_many_tasks)."""
    if "keep_many_tasks" not in request.node.name:
        monkeypatch.setattr(steps_module, "BATCH_MIN_TASKS", 1)


def info(shape: tuple[int, ...], chunk: tuple[int, ...], dtype: str = "float32") -> ArrayInfo:
    chunks = tuple(tuple([c] * (n // c) + ([n % c] if n % c else []))
                   for n, c in zip(shape, chunk, strict=True))
    return ArrayInfo(shape, np.dtype(dtype), tuple("zyx"[-len(shape):]), chunks)


def steps(**table: object) -> list:  # type: ignore[type-arg]
    return parse_steps([table])


def test_a_mean_over_z_reads_whole_multiples_of_the_stored_chunks_along_z() -> None:
    # 8 x 512 x 512 float32 counts 16 MiB at 8 bytes a value: 8 of them make 128 MiB
    got = read_batch(info((128, 16384, 16384), (8, 512, 512)),
                     steps(reduce="mean", axis=["z"]), 128 * MiB)
    assert got == {"z": 64}
    # the whole axis when it fits
    assert read_batch(info((24, 1024, 1024), (8, 64, 64)), steps(reduce="max", axis="z"),
                      128 * MiB) == {"z": 24}


def test_the_reduced_axes_grow_in_order_within_the_budget() -> None:
    got = read_batch(info((100, 400, 64), (10, 10, 64)), steps(reduce="sum", axis=["z", "y"]),
                     4 * MiB)
    # one stored chunk is 10*10*64*8 = 51,200 bytes: z grows to its whole 100 (10x),
    # then y by 4 MiB / 512,000 = 8 chunks of 10
    assert got == {"z": 100, "y": 80}


@pytest.mark.parametrize(("table", "shape", "chunk", "why"), [
    ({"filter": "gaussian", "sigma": 1.0}, (64, 64), (8, 8), "a filter's blocks are its output's"),
    ({"reduce": "mean", "axis": "z"}, (64, 512, 512), (8, 512, 512), "stored chunk large"),
    ({"reduce": "mean", "axis": "z"}, (8, 64, 64), (8, 8, 8), "z is one chunk already"),
])
def test_no_batch(table: dict, shape: tuple[int, ...], chunk: tuple[int, ...],  # type: ignore[type-arg]
                  why: str) -> None:
    assert read_batch(info(shape, chunk), parse_steps([table]), 4 * MiB) is None, why


def test_few_chunks_are_not_batched_and_batches_keep_many_tasks() -> None:
    assert steps_module.BATCH_MIN_TASKS == 1024
    mean_z = steps(reduce="mean", axis="z")
    # 3 x 16 x 16 = 768 chunks: few enough that dask's per-task cost does not matter
    assert read_batch(info((24, 1024, 1024), (8, 64, 64)), mean_z, 128 * MiB) is None
    # 64 x 4 x 4 = 1024 chunks of 8 KiB: a 128 MiB budget would take all 64 along z,
    # but the tasks stay at least 1024 (to spread over the jobs): no batch at all
    assert read_batch(info((512, 64, 64), (8, 16, 16)), mean_z, 128 * MiB) is None
    # 64 x 8 x 8 = 4096 chunks: batched 4 along z, 1024 tasks
    assert read_batch(info((512, 128, 128), (8, 16, 16)), mean_z, 128 * MiB) == {"z": 32}


@settings(max_examples=60, deadline=None)
@given(shape=st.lists(st.integers(1, 300), min_size=1, max_size=3),
       data=st.data(), budget=st.integers(1, 1 << 22))
def test_batches_are_whole_multiples_and_stay_in_the_budget(
    shape: list[int], data: st.DataObject, budget: int,
) -> None:
    chunk = tuple(data.draw(st.integers(1, n)) for n in shape)
    i = info(tuple(shape), chunk)
    axis = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    got = read_batch(i, steps(reduce="mean", axis=axis), budget)
    if got is None:
        return
    size = 8
    for a, d in enumerate(i.dims):
        n = got.get(d, chunk[a])
        assert d in got or n == chunk[a]
        if d in got:
            assert a in axis
            assert n == shape[a] or n % chunk[a] == 0
            assert n > chunk[a]
        size *= n
    assert size <= max(budget, 8 * int(np.prod(chunk)))


def test_a_run_with_small_stored_chunks_batches_reads_and_equals_numpy(
    cli: Cli, tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_normal((64, 48, 40)).astype("float32")
    src = tmp_path / "in.zarr"
    zarr.create_array(src, data=data, chunks=(4, 16, 8), dimension_names=["z", "y", "x"])
    out = tmp_path / "out.zarr"
    res = cli("reduce", str(src), str(out), "--op", "mean", "--axis", "z", "--site", "local")
    assert res.code == 0, res
    assert "each task reads 16 stored chunks along z (4 -> 64)" in res.out + res.err
    got = zarr.open_array(out / "result")
    np.testing.assert_allclose(got[...], data.mean(axis=0, dtype=np.float64).astype("float32"),
                               rtol=1e-6)
    assert got.chunks == (16, 8)  # the output's blocks are the stored chunks' own


@pytest.mark.parametrize(("extra", "planes"), [
    ((), 16),  # one worker: dask's threaded scheduler, 16 MiB of float32 a task
    (("--jobs", "2"), 64),  # worker processes: 64 MiB, dask's cost per task weighs more
    (("--site", "local-cluster"), 64),
])
def test_a_run_in_process_reads_smaller_batches_than_worker_processes(
    cli: Cli, tmp_path: Path, user_sites: Path, extra: tuple[str, ...], planes: int,
) -> None:
    write_profile(user_sites, "local-cluster",
                  'kind = "local"\n[local]\nscheduler = "distributed"\n')
    src = tmp_path / "in.zarr"  # metadata only: planning reads no data
    zarr.create_array(src, shape=(128, 16384, 16384), chunks=(8, 512, 512), dtype="float32",
                      dimension_names=["z", "y", "x"])
    site = () if "--site" in extra else ("--site", "local")
    res = cli("reduce", str(src), str(tmp_path / "out.zarr"), "--op", "mean", "--axis", "z",
              *site, *extra, "--dry-run")
    assert res.code == 0, res
    said = res.out + res.err
    assert f"reads {planes // 8} stored chunks along z (8 -> {planes})" in said, said
    assert ("threaded scheduler" in said) is (not extra)
