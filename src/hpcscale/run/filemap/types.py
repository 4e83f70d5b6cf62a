"""What a map run hands back: its summary, with the files' outcome."""

from __future__ import annotations

from dataclasses import dataclass

from hpcscale.errors import RunError
from hpcscale.run.types import Summary


@dataclass
class MapSummary(Summary):
    """A run's :class:`Summary` with what became of its files."""

    files: int = 0  # matched by the glob
    ok: int = 0  # in the index as ok (this run's and earlier runs')
    failed: int = 0
    not_run: int = 0  # not processed: stopped early, interrupted, or an array task ended
    resumed: int = 0  # ok from an earlier run: not processed again
    engine: str = "dask"
    index: str = ""  # index.zarr
    table: str = ""  # index.csv, as the user wrote the output
    array_job: str | None = None
    stopped: str | None = None  # why the run stopped before every file was processed
    left_out: tuple[str, ...] = ()  # returned arrays not in the index (shapes differ)

    def problem(self) -> str | None:
        """One line when not every file is ok: ``3 of 2,000 files failed (see
        results/index.csv)``; None when all are."""
        if not self.failed and not self.not_run:
            return None
        parts = []
        if self.failed:
            parts.append(f"{self.failed:,} of {self.files:,} files failed")
        if self.not_run:
            parts.append(f"{self.not_run:,}{'' if self.failed else f' of {self.files:,}'} "
                         f"{'file was' if self.not_run == 1 else 'files were'} not run")
        text = " and ".join(parts) + f" (see {self.table})"
        if self.stopped:
            text += f"; {self.stopped}"
        if self.not_run:
            text += "; re-run the same command to process the rest"
        return text

    def check(self) -> None:
        """Raise the one-line :class:`RunError` of :meth:`problem`, if any."""
        problem = self.problem()
        if problem:
            raise RunError(problem)
