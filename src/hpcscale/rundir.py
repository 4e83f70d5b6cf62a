"""The run directory contract: everything needed to follow, debug or clean up a run.

``<runs>/<run id>/`` (mode 0700) holds the job spec copy, the resolved
profile, the plan, ``state.json`` (state, scheduler address, SLURM job ids),
the worker logs, the TLS credentials, the timeline, ``summary.json`` and the
report. ``<runs>`` is ``$HPCSCALE_RUNS_DIR`` or the user's state directory (on
a shared home, so compute nodes can read the credentials).

This module is the only one that names those files (:class:`RunDir`'s
properties), the run's states (:class:`RunState`), the keys of ``state.json``
(:class:`RunStatus`, used by writers and readers alike) and the run's SLURM
job name (:func:`job_name`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hpcscale._fs import write_json
from hpcscale.errors import UsageError

if TYPE_CHECKING:
    from hpcscale.config.profiles import SiteProfile
    from hpcscale.sizing import Plan


def state_dir() -> Path:
    """The user's state directory: ``$HPCSCALE_STATE_DIR`` or the platform's
    (``~/.local/state/hpcscale`` on Linux)."""
    override = os.environ.get("HPCSCALE_STATE_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_state_dir("hpcscale"))


class RecordedSpec(Protocol):
    """What a run directory keeps of its job spec (a ``JobSpec`` or a ``MapSpec``)."""

    @property
    def output_path(self) -> str: ...

    def to_toml(self) -> str: ...


def runs_dir() -> Path:
    override = os.environ.get("HPCSCALE_RUNS_DIR")
    if override:
        return Path(override).expanduser()
    return state_dir() / "runs"


def calibration_file() -> Path:
    """``hpcscale calibrate``'s measurements, beside the runs in the state directory."""
    return state_dir() / "calibration.json"


def _dask_config_files() -> list[str]:
    import dask.config

    found = []
    for directory in dask.config.paths:
        p = Path(directory)
        if p.is_dir():
            found += [str(f) for f in sorted(p.glob("*.y*ml"))]
        elif p.is_file():
            found.append(str(p))
    return found


# What new_run_id() makes: a run id is also a directory name and part of a job name.
RUN_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
JOB_PREFIX = "hpcscale-"  # every SLURM job of a run is named hpcscale-<run id>
DASK_REPORT = "dask-report.html"  # dask's own performance report, beside report.html
# Seconds of computation from which dask's report is worth rendering (run.compute decides,
# the report says so when it is missing): it took 1.5-2 s after a short computation
# and 6-7 s after a 35 s median filter.
DASK_REPORT_AFTER = 120.0
DRIVER_LOG = "driver"  # a batch driver's logs: driver-<job id>.out and .err
ARRAY_LOG = "array"  # a map run's array tasks' logs: array-<array job id>_<task>.out and .err


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def job_name(run_id: str) -> str:
    """The name of every SLURM job of run ``run_id``: how ``squeue`` finds them."""
    return f"{JOB_PREFIX}{run_id}"


class RunState(StrEnum):
    """Where a run is, as ``state.json`` records it (``hpcscale status`` shows it)."""

    CREATED = "created"  # run directory made, nothing submitted yet
    WRITTEN = "written"  # a batch script written, not submitted
    STARTING = "starting"  # the cluster is starting
    PENDING = "pending"  # jobs submitted, waiting for workers
    RUNNING = "running"  # computing
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # Ctrl-C, SIGTERM, `hpcscale cancel`
    ORPHANED = "orphaned"  # its driver died; `hpcscale cleanup` cancelled its jobs
    LOST = "lost"  # shown only: a batch job left the queue without its driver recording an end
    UNKNOWN = "unknown"  # shown only: no readable state.json


# A run in one of these may still have jobs in the queue and a driver alive.
ACTIVE = frozenset({RunState.CREATED, RunState.STARTING, RunState.PENDING, RunState.RUNNING})
# A run in one of these has ended for good; nothing overwrites it but the driver's exit code.
ENDED = frozenset({RunState.DONE, RunState.FAILED, RunState.CANCELLED, RunState.ORPHANED})


class Progress(BaseModel):
    done: int = 0
    total: int = 0


class RunStatus(BaseModel):
    """``state.json``: written by the driver (and ``sbatch``, ``cancel``, ``cleanup``),
    read by ``status``, ``runs``, ``cleanup`` and the report. Keys older runs wrote that
    are no longer known are kept as they are (``extra``)."""

    model_config = ConfigDict(extra="allow")

    run_id: str = ""
    state: RunState = RunState.UNKNOWN
    created: float | None = None
    updated: float | None = None
    pid: int | None = None
    host: str | None = None
    site: str | None = None
    output: str | None = None
    # the cluster, once started
    scheduler: str | None = None
    dashboard: str | None = None
    forward: str | None = None
    jobs: dict[str, str] = Field(default_factory=dict)  # worker job id -> its SLURM state
    progress: Progress | None = None
    # the end
    error: str | None = None
    exit_code: int | None = None
    cancelled: list[str] = Field(default_factory=list)  # job ids `cleanup` cancelled
    # a batch run (`hpcscale sbatch`): the driver runs in its own job
    batch: bool = False
    script: str | None = None
    batch_job: str | None = None
    submitted: float | None = None
    driver_node: str | None = None
    scheduler_interface: str | None = None
    # the profile's log_directory, where the worker jobs write (else the run's logs/)
    log_directory: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    @classmethod
    def lenient(cls, data: Mapping[str, Any]) -> RunStatus:
        """From a state.json an older version, a hand edit or a cut-short write left:
        what validates is kept, the rest dropped."""
        try:
            return cls.model_validate(data)
        except ValidationError:
            good = {}
            for key, value in data.items():
                try:
                    cls.model_validate({key: value})
                except ValidationError:
                    continue
                good[key] = value
            return cls.model_validate(good)


_KEYS = frozenset(RunStatus.model_fields)


@dataclass(frozen=True)
class RunDir:
    """One run's directory; every file in it is named here and nowhere else."""

    run_id: str
    path: Path

    # -- the files ----------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def logs(self) -> Path:
        """The worker jobs' and the batch driver's logs (unless the profile names another
        ``log_directory``), and the driver's own dask log."""
        return self.path / "logs"

    @property
    def dask_log(self) -> Path:
        """dask's and distributed's own log records during the run (not the terminal's)."""
        return self.logs / "dask.log"

    @property
    def worker_logs(self) -> Path:
        """Where the worker jobs write their logs: the profile's ``log_directory`` as the
        run recorded it, else :attr:`logs`."""
        configured = self.status().log_directory
        return Path(os.path.expanduser(configured)) if configured else self.logs

    @property
    def tls(self) -> Path:
        return self.path / "tls"

    @property
    def jobspec(self) -> Path:
        return self.path / "jobspec.toml"

    @property
    def profile(self) -> Path:
        return self.path / "profile.json"

    @property
    def plan_json(self) -> Path:
        return self.path / "plan.json"

    @property
    def plan_txt(self) -> Path:
        return self.path / "plan.txt"

    @property
    def config_files(self) -> Path:
        return self.path / "config-files.json"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def timeline(self) -> Path:
        return self.path / "timeline.jsonl"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def dask_report(self) -> Path:
        return self.path / DASK_REPORT

    @property
    def driver_output(self) -> tuple[Path, Path]:
        """A batch run's driver's stdout and stderr, as ``#SBATCH --output/--error`` name
        them (``%j``: the job id)."""
        return self.logs / f"{DRIVER_LOG}-%j.out", self.logs / f"{DRIVER_LOG}-%j.err"

    @property
    def batch_script(self) -> Path:
        return self.path / "batch.sbatch"

    @property
    def array_script(self) -> Path:
        """A map run's SLURM job array script (``hpcscale map --engine array``)."""
        return self.path / "array.sbatch"

    @property
    def array_plan(self) -> Path:
        """A map run's array: its files, their shares and where rows go (JSON)."""
        return self.path / "array.json"

    @property
    def array_function(self) -> Path:
        """A map run's function and kwargs, pickled for the array's tasks."""
        return self.path / "function.pkl"

    @property
    def array_output(self) -> tuple[Path, Path]:
        """The array tasks' stdout and stderr (``%A``: the array's job id, ``%a``: the
        task's index)."""
        return self.logs / f"{ARRAY_LOG}-%A_%a.out", self.logs / f"{ARRAY_LOG}-%A_%a.err"

    @property
    def report_sources(self) -> tuple[Path, ...]:
        """What the run report is built from: a report older than any of them is stale."""
        return (self.state_file, self.plan_json, self.plan_txt, self.summary, self.timeline,
                self.jobspec, self.dask_report)

    @property
    def job_name(self) -> str:
        return job_name(self.run_id)

    # -- making and finding -------------------------------------------------------------------
    @classmethod
    def create(
        cls, spec: RecordedSpec, profile: SiteProfile, plan: Plan, *, trusted: bool = False,
        profile_files: tuple[Path, ...] = (), run_id: str | None = None,
    ) -> RunDir:
        """Make a new run directory, or with ``run_id`` create or adopt the one of that id.

        Adopting (a batch run's driver taking over the directory ``hpcscale sbatch``
        made) rewrites the spec, profile and plan with what actually runs and keeps
        the state's earlier keys (the batch job id).
        """
        base = runs_dir()
        base.mkdir(parents=True, exist_ok=True)
        if run_id is not None and not RUN_ID_RE.match(run_id):
            raise ValueError(f"run id {run_id!r} is not of the form YYYYMMDD-HHMMSS-xxxxxx")
        run_id = run_id or new_run_id()
        rd = cls(run_id, base / run_id)
        rd.path.mkdir(mode=0o700, exist_ok=rd.state_file.is_file())
        os.chmod(rd.path, 0o700)
        rd.jobspec.write_text(spec.to_toml(), encoding="utf-8")
        write_json(rd.profile, profile.model_dump(mode="json"))
        rd.plan_txt.write_text("\n".join(plan.lines()) + "\n", encoding="utf-8")
        write_json(rd.plan_json, dataclasses.asdict(plan))
        write_json(rd.config_files, {
            "profiles": [str(p) for p in profile_files],
            "dask": _dask_config_files(),
            "trusted_profiles": trusted,
        })
        rd.update(run_id=run_id, state=RunState.CREATED, created=time.time(), pid=os.getpid(),
                  host=os.uname().nodename, site=profile.name, output=spec.output_path)
        return rd

    @classmethod
    def existing(cls, run_id: str) -> RunDir | None:
        """The run directory of ``run_id`` if it has been created, else None."""
        rd = cls(run_id, runs_dir() / run_id)
        return rd if rd.state_file.is_file() else None

    @classmethod
    def find(cls, run: str) -> RunDir:
        """The run named by ``run``: ``last`` (the newest), a run id or a unique prefix of one."""
        runs = list_runs()
        if run == "last":
            if not runs:
                raise UsageError("RUN 'last': no runs yet (see `hpcscale runs`)")
            return runs[-1]
        matches = [r for r in runs if r.run_id.startswith(run)]
        if len(matches) != 1:
            what = "no run" if not matches else f"{len(matches)} runs"
            raise UsageError(f"RUN {run!r}: {what} with that id (see `hpcscale runs`)")
        return matches[0]

    # -- the state ----------------------------------------------------------------------------
    def status(self) -> RunStatus:
        """What ``state.json`` says; a missing or unreadable one says ``unknown``."""
        try:
            data = json.loads(self.state_file.read_text("utf-8"))
        except (OSError, ValueError):
            return RunStatus(run_id=self.run_id)
        if not isinstance(data, dict):
            return RunStatus(run_id=self.run_id)
        return RunStatus.lenient(data)

    def update(self, **changes: Any) -> RunStatus:
        """Record ``changes`` (keys of :class:`RunStatus`) in ``state.json``, atomically."""
        unknown = set(changes) - _KEYS
        if unknown:
            raise ValueError(f"state.json has no key(s) {sorted(unknown)}")
        data = self.status().model_dump(mode="json", exclude_none=True)
        data.update(RunStatus.model_validate(changes).model_dump(
            mode="json", include=set(changes)))
        data["updated"] = time.time()
        status = RunStatus.model_validate(data)
        write_json(self.state_file, status.model_dump(mode="json", exclude_none=True))
        return status

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        write_json(self.summary, dict(summary))

    def sample(self, client: Any, phase: str, jobs: Mapping[str, Any] | None = None,
               **extra: Any) -> None:
        """Append one line to ``timeline.jsonl``: time, phase, each worker's memory and
        tasks, the SLURM jobs' states and ``extra``; what the run report is drawn from."""
        workers = client.scheduler_info(n_workers=-1)["workers"]
        line = {
            "t": round(time.time(), 3),
            "phase": phase,
            "workers": {
                w.get("name", addr) if isinstance(w.get("name"), str) else addr: {
                    "memory": w.get("metrics", {}).get("memory", 0),
                    "memory_limit": w.get("memory_limit", 0),
                    "executing": w.get("metrics", {}).get("task_counts", {}).get("executing", 0),
                    "host": w.get("host", ""),
                    "address": addr,
                }
                for addr, w in workers.items()
            },
            "jobs": {i: getattr(s, "state", str(s)) for i, s in (jobs or {}).items()},
            **extra,
        }
        with self.timeline.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str) + "\n")


def list_runs() -> list[RunDir]:
    """Every run directory, oldest first (run ids begin with their start time)."""
    base = runs_dir()
    if not base.is_dir():
        return []
    found = (RunDir(p.name, p) for p in sorted(base.iterdir()))
    return [rd for rd in found if rd.state_file.exists()]
