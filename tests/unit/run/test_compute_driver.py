"""The compute loop's cost per round does not grow with the graph (issue 14), and its
observers are callbacks that keep the run's public record: manifest, progress, timeline.

Rate limits are made event-driven by freezing the callbacks' clock: then every
scheduler call the loop makes is one its callbacks make at start and end, and a
loop that asks the scheduler anything per finished block shows it as growth.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from distributed import Client, LocalCluster

from hpcscale import run
from hpcscale.config import jobspec
from hpcscale.io.manifest import Manifest
from hpcscale.run import callbacks, compute
from hpcscale.rundir import RunDir

Index = tuple[int, ...]


class CountingClient:
    """The real client, counting every call the driver makes to it, by method;
    ``compute`` (submitting the graph) is not a round trip of the loop."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name == "compute":
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


class Recorder:
    def __init__(self) -> None:
        self.progress_calls: list[tuple[int, int]] = []

    def status(self, text: str) -> None:
        pass

    def info(self, text: str) -> None:
        pass

    def progress(self, done: int, total: int) -> None:
        self.progress_calls.append((done, total))


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False,  # type: ignore[no-untyped-call]
                      dashboard_address=":0") as cluster, \
            Client(cluster) as c:  # type: ignore[no-untyped-call]
        yield c


def _prepared(tmp_path: Path, side: int) -> run.Prepared:
    """Mean along z of a 2 x side x side input in 8 x 8 chunks: (side/8)^2 output blocks."""
    inp = tmp_path / f"in-{side}.zarr"
    arr = zarr.create_array(inp, shape=(2, side, side), chunks=(1, 8, 8), dtype="float32",
                             dimension_names=("z", "y", "x"))
    arr[...] = np.arange(2 * side * side, dtype="float32").reshape(2, side, side)
    spec = tmp_path / f"job-{side}.toml"
    spec.write_text(f'[input]\npath = "{inp}"\n[[steps]]\nreduce = "mean"\naxis = ["z"]\n'
                    f'[output]\npath = "{tmp_path / f"out-{side}.zarr"}"\n')
    return run.prepare(jobspec.load(spec), "local")


def _run(tmp_path: Path, side: int, client: Client) -> tuple[int, int, Recorder, Path]:
    """(blocks, scheduler calls, reporter, run directory) of one compute phase."""
    prep = _prepared(tmp_path, side)
    rundir = RunDir(f"run-{side}", tmp_path / f"run-{side}")
    rundir.path.mkdir()
    counting = CountingClient(client)
    reporter = Recorder()
    write, _ = compute.write_result(prep, counting, reporter, None, rundir)
    assert (Path(write.path) / "zarr.json").exists()
    np.testing.assert_allclose(zarr.open_array(write.path, path="result")[...],
                               zarr.open_array(_input(tmp_path, side))[...].mean(axis=0))
    return write.total, sum(counting.calls.values()), reporter, rundir.path


def _input(tmp_path: Path, side: int) -> Path:
    return tmp_path / f"in-{side}.zarr"


def test_scheduler_calls_do_not_grow_with_the_block_count(
    tmp_path: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callbacks, "clock", lambda: 0.0)
    small, small_calls, _, _ = _run(tmp_path, 64, client)
    large, large_calls, _, _ = _run(tmp_path, 256, client)
    assert (small, large) == (64, 1024)  # 16x the blocks
    # per finished block the calls fall as the blocks grow: none is made per block
    assert large_calls / large <= small_calls / small
    assert large_calls <= small_calls, (small_calls, large_calls)


def test_progress_timeline_and_manifest_keep_their_record(
    tmp_path: Path, client: Client
) -> None:
    blocks, _, reporter, run_dir = _run(tmp_path, 32, client)
    assert blocks == 16
    done, total = reporter.progress_calls[-1]
    assert done == total > blocks  # tasks of the graph, all done
    lines = [json.loads(x) for x in (run_dir / "timeline.jsonl").read_text().splitlines()]
    assert lines[-1]["phase"] == "computing"
    assert (lines[-1]["blocks"], lines[-1]["total"]) == (16, 16)
    assert lines[-1]["workers"]


def test_a_stopped_loop_records_every_finished_block_and_no_other(
    tmp_path: Path, client: Client
) -> None:
    prep = _prepared(tmp_path, 64)
    write = _write(prep, tmp_path)
    futures = client.compute(list(write.blocks.values()))  # type: ignore[no-untyped-call]
    by_index: dict[Index, Any] = dict(zip(write.blocks, futures, strict=True))
    recorder = callbacks.Manifest(write, every=3600.0)  # nothing appended before the end
    seen: list[Index] = []

    class Seen(callbacks.Callback):
        def on_blocks_done(self, indices: Sequence[Index]) -> None:
            assert all(by_index[i].status == "finished" for i in indices)
            seen.extend(indices)

        def on_round(self, now: float) -> None:
            if seen:  # stop the loop as a failed block would, some blocks done
                raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        compute.follow(client, by_index, [recorder, Seen()], write.path, 0)
    assert seen
    assert Manifest(write.path).done() == set(seen)  # flushed at the end, though it failed
    client.gather(futures)  # type: ignore[no-untyped-call]


def _write(prep: run.Prepared, tmp_path: Path) -> Any:
    from hpcscale.io import output

    return output.write_zarr(prep.result, path=prep.spec.output.path, name="result",
                             dims=prep.info.dims, provenance={})
