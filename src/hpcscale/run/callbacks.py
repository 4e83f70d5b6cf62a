"""Observers of the compute loop (:func:`hpcscale.compute.follow`), as callbacks.

The loop only waits for blocks and hands each batch of finished ones to its
callbacks; what is done with them (progress, the timeline, the job watcher,
the manifest) lives here, each at its own rate. ``on_round`` is called at
every wake-up of the loop: a callback that asks the scheduler anything
rate-limits itself with :class:`Every`, so the driver's cost per round does
not grow with the number of blocks or tasks (cubed's ``Callback`` is the shape).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpcscale.backends import watch
    from hpcscale.io.output import PendingWrite
    from hpcscale.rundir import RunDir

Index = tuple[int, ...]

PROGRESS = 0.5  # seconds between progress updates
SAMPLE = 1.0  # seconds between timeline samples
RECORD = 1.0  # seconds between manifest appends (a killed driver recomputes at most these)

# The loop's clock; a test replaces it to make every rate limit depend on events only.
clock: Callable[[], float] = time.monotonic


class Callback:
    """Hooks of the compute loop; each does nothing unless overridden.

    ``on_compute_start(total)``: ``total`` blocks are about to be computed.
    ``on_blocks_done(indices)``: these blocks' futures finished (their data is written).
    ``on_round(now)``: the loop woke up (blocks done, or a poll interval passed).
    ``on_compute_end(complete)``: the loop ended; ``complete`` unless a block failed.
    """

    def on_compute_start(self, total: int) -> None:
        pass

    def on_blocks_done(self, indices: Sequence[Index]) -> None:
        pass

    def on_round(self, now: float) -> None:
        pass

    def on_compute_end(self, complete: bool) -> None:
        pass


class Every:
    """True at most once per ``seconds`` (and the first time asked)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._last: float | None = None

    def due(self, now: float) -> bool:
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True


class Progress(Callback):
    """The progress bar, in tasks of the graph: the scheduler's per-group counts,
    asked at most every PROGRESS seconds (one small call, whatever the graph's size)."""

    def __init__(self, client: Any, reporter: Any, every: float = PROGRESS) -> None:
        self.client = client
        self.reporter = reporter
        self.every = Every(every)
        self.total = 0

    def _remaining(self) -> int:
        return int(self.client.run_on_scheduler(remaining_tasks))

    def on_compute_start(self, total: int) -> None:
        # the graph's size as submitted: a fast run may be done before the first round
        self.total = self._remaining() if total else 0

    def on_round(self, now: float) -> None:
        if self.every.due(now):
            remaining = self._remaining()
            self.total = max(self.total, remaining)
            self.reporter.progress(self.total - remaining, self.total)

    def on_compute_end(self, complete: bool) -> None:
        if complete:
            self.reporter.progress(self.total, self.total)


def remaining_tasks(dask_scheduler: Any = None) -> int:
    """Tasks not yet computed, from each task group's state counts: a walk over the
    groups (one per layer of the graph), never over the tasks."""
    states = ("released", "waiting", "queued", "processing", "no-worker")
    return sum(tg.states.get(s, 0) for tg in dask_scheduler.task_groups.values() for s in states)


class Timeline(Callback):
    """One ``timeline.jsonl`` line (what the run report draws) every SAMPLE seconds
    and at the end: the workers, and how many of the output's blocks are written."""

    def __init__(self, client: Any, rundir: RunDir, write: PendingWrite,
                 every: float = SAMPLE) -> None:
        self.client = client
        self.rundir = rundir
        self.total = write.total
        self.done = write.total - len(write.blocks)  # written by an earlier run
        self.every = Every(every)

    def on_blocks_done(self, indices: Sequence[Index]) -> None:
        self.done += len(indices)

    def _sample(self) -> None:
        self.rundir.sample(self.client, phase="computing", blocks=self.done, total=self.total)

    def on_round(self, now: float) -> None:
        if self.every.due(now):
            self._sample()

    def on_compute_end(self, complete: bool) -> None:
        if complete:
            self._sample()


class Watcher(Callback):
    """The job watcher (lost and retiring jobs replaced), polled at its own rate with
    the number of connected workers."""

    def __init__(self, client: Any, watcher: watch.JobWatcher) -> None:
        from hpcscale.backends import watch

        self.client = client
        self.watcher = watcher
        self.every = Every(watch.POLL)

    def on_round(self, now: float) -> None:
        if self.every.due(now):
            self.watcher.poll(len(self.client.scheduler_info(n_workers=-1)["workers"]))


class Manifest(Callback):
    """Records finished blocks in the store's manifest, in one append every RECORD
    seconds and at the end (a failed run's finished blocks too, so a resume skips them).
    A block is recorded only once its future has finished."""

    def __init__(self, write: PendingWrite, every: float = RECORD) -> None:
        self.write = write
        self.every = Every(every)
        self.every.due(clock())  # the first append after RECORD seconds, not at once
        self.pending: list[Index] = []

    def on_blocks_done(self, indices: Sequence[Index]) -> None:
        self.pending.extend(indices)

    def _flush(self) -> None:
        if self.pending:
            self.write.written(self.pending)
            self.pending = []

    def on_round(self, now: float) -> None:
        if self.every.due(now):
            self._flush()

    def on_compute_end(self, complete: bool) -> None:
        self._flush()
