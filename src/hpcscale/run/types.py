"""What a run hands from one phase to the next: the prepared run, its summary, and
the reporter that shows its progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hpcscale import sizing
from hpcscale.config import profiles
from hpcscale.config.jobspec import JobSpec
from hpcscale.io import inputs
from hpcscale.ops import ArrayInfo


class Reporter(Protocol):
    def status(self, text: str) -> None: ...
    def progress(self, done: int, total: int) -> None: ...
    def info(self, text: str) -> None: ...


class Silent:
    def status(self, text: str) -> None:
        pass

    def progress(self, done: int, total: int) -> None:
        pass

    def info(self, text: str) -> None:
        pass


@dataclass
class Prepared:
    spec: JobSpec
    profile: profiles.SiteProfile
    source: inputs.InputArray
    result: Any  # dask array
    info: ArrayInfo
    plan: sizing.Plan
    overwrite: bool = False
    trusted: bool = False
    profile_files: tuple[Path, ...] = ()
    job: str = ""  # fingerprint of what produces the output: a store of the same job resumes
    resume: bool = False  # the output is an unfinished store of this job


@dataclass
class Summary:
    run_id: str
    run_dir: str
    site: str
    output: str
    seconds: float
    bytes_in: int
    bytes_out: int
    jobs: list[str] = field(default_factory=list)
    workers: int = 0
    nodes: list[str] = field(default_factory=list)
    lost_jobs: list[str] = field(default_factory=list)
    retired_jobs: list[str] = field(default_factory=list)
    blocks: int = 0  # output blocks in all
    blocks_resumed: int = 0  # written by an earlier, interrupted run: not computed again
    startup_s: float = 0.0  # from the command's start to this run's start (imports, prepare)
    first_worker_s: float | None = None  # from this run's start to the first worker
    compute_s: float = 0.0  # from all workers connected to the output complete
    peak_memory: dict[str, int] = field(default_factory=dict)  # worker -> bytes
