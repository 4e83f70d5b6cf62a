"""The in-process backend: dask's threaded scheduler behind the part of a Client a run uses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr

from helpers import blocking_zarr, fifo_reader
from hpcscale import sizing
from hpcscale.backends import threads
from hpcscale.config.profiles import LocalProfile, LocalSettings
from hpcscale.errors import InputError
from hpcscale.run import callbacks

WAIT = 60  # seconds a test waits for an event that a working backend gives at once


def _blocks(fns: list) -> list:  # type: ignore[type-arg]
    return [dask.delayed(fn)(i, dask_key_name=f"block-{i}") for i, fn in enumerate(fns)]


def _done(future: threads.BlockFuture) -> threading.Event:
    seen = threading.Event()
    future.add_done_callback(lambda _f: seen.set())
    return seen


def test_each_block_is_settled_when_its_own_task_finishes() -> None:
    release = threading.Event()

    def slow(i: int) -> int:
        assert release.wait(WAIT)
        return i

    with threads.ThreadsClient(2) as client:
        slow_f, quick_f = client.compute(_blocks([slow, lambda i: i]))
        assert _done(quick_f).wait(WAIT)
        # the quick block is finished while the other one is still running
        assert (quick_f.status, slow_f.status) == ("finished", "pending")
        left = client.run_on_scheduler(callbacks.remaining_tasks)
        assert left == 1
        executing = client.scheduler_info()["workers"][threads.ADDRESS]["metrics"]
        assert executing["task_counts"]["executing"] == 1
        release.set()
        assert _done(slow_f).wait(WAIT)
        assert slow_f.status == "finished"
        assert client.run_on_scheduler(callbacks.remaining_tasks) == 0


def test_a_failed_block_keeps_its_error_for_the_run_to_report() -> None:
    def bad(i: int) -> int:
        raise InputError(f"chunk {i} is unreadable")

    with threads.ThreadsClient(1) as client:
        (future,) = client.compute(_blocks([bad]))
        assert _done(future).wait(WAIT)
    assert future.status == "error"
    err = future.exception()
    assert isinstance(err, InputError)
    assert "chunk 0 is unreadable" in str(err)
    # the failed task is not counted as still running (an error's exit would not wait)
    assert not threads.tasks_running()


def test_closing_hands_out_no_further_task() -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def task(i: int) -> int:
        if not ran:  # whichever runs first blocks until the test says
            ran.append(i)
            started.set()
            assert release.wait(WAIT)
        else:
            ran.append(i)
        return i

    client = threads.ThreadsClient(1)  # one thread: the others wait for the first
    futures = client.compute(_blocks([task] * 4))
    assert started.wait(WAIT)
    client._stop.set()  # what close() does first; close() would then wait for the thread
    release.set()
    client.close(timeout=WAIT)
    (first,) = ran
    assert futures[first].status == "finished"
    assert {f.status for i, f in enumerate(futures) if i != first} == {"cancelled"}


def test_run_and_scheduler_info_speak_of_this_process_as_the_one_worker() -> None:
    client = threads.ThreadsClient(3, memory_limit=1 << 30)

    def nthreads(dask_worker: object = None) -> int:
        return dask_worker.state.nthreads  # type: ignore[attr-defined]

    assert client.run(nthreads) == {threads.ADDRESS: 3}
    assert client.run(os.getpid, workers=[threads.ADDRESS]) == {threads.ADDRESS: os.getpid()}
    assert client.run(os.getpid, workers=["tcp://elsewhere:1"]) == {}
    assert client.run(lambda: 1 / 0, on_error="ignore") == {}
    with pytest.raises(ZeroDivisionError):
        client.run(lambda: 1 / 0)
    (worker,) = client.scheduler_info()["workers"].values()
    assert worker["memory_limit"] == 1 << 30
    assert worker["nthreads"] == 3
    assert worker["metrics"]["memory"] > 0


WORKLOAD = sizing.Workload(chunks=64, chunk_bytes=1 << 20, bytes_in=64 << 20, bytes_out=1 << 20,
                           output_chunks=8)


@pytest.mark.parametrize(("settings", "jobs", "holds_gil", "asked", "expected"), [
    (LocalSettings(), "auto", False, True, True),
    (LocalSettings(), 1, False, True, True),
    (LocalSettings(), "auto", False, False, False),  # a Client for a user: never
    (LocalSettings(), 2, False, True, False),  # two workers are a LocalCluster
    (LocalSettings(), "auto", True, True, False),  # the work holds the GIL: processes
    (LocalSettings(scheduler="distributed"), "auto", False, True, False),
])
def test_a_local_plan_runs_in_process_only_with_one_worker_and_when_asked(
    settings: LocalSettings, jobs: int | str, holds_gil: bool, asked: bool, expected: bool,
) -> None:
    workload = sizing.Workload(**{**WORKLOAD.__dict__, "holds_gil": holds_gil})
    plan = sizing.plan(LocalProfile(name="local", local=settings), workload, jobs,
                       in_process=asked)
    assert plan.in_process is expected
    said = any("threaded scheduler" in d for d in plan.decisions)
    assert said is expected


def _run(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hpcscale", "reduce", str(tmp_path / "in.zarr"),
         str(tmp_path / "out.zarr"), "--op", "max", "--axis", "dim_0", "--site", "local",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_ends_an_in_process_run_at_once_even_with_a_task_blocked(
    tmp_path: Path,
) -> None:
    data, fifo, payload = blocking_zarr(tmp_path / "in.zarr")
    proc = _run(tmp_path)
    held = fifo_reader(fifo)  # a task is reading the blocked chunk: the run is computing
    proc.send_signal(signal.SIGINT)
    try:
        # the task stays blocked: the process must not wait for it
        out, err = proc.communicate(timeout=WAIT)
    finally:
        os.close(held)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    (state,) = Path(os.environ["HPCSCALE_RUNS_DIR"]).glob("*/state.json")
    assert json.loads(state.read_text())["state"] == "cancelled"
    fifo.unlink()
    fifo.write_bytes(payload)
    again = _run(tmp_path)
    out, err = again.communicate(timeout=WAIT)
    assert again.returncode == 0, err
    assert "is an unfinished result of this same job" in err + out
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "out.zarr" / "result")[...],
                                  data.max(axis=0))
