"""The run directory: everything needed to follow, debug or clean up a run.

``<runs>/<run id>/`` (mode 0700) holds the job spec copy, the resolved
profile, the plan, ``state.json`` (state, scheduler address, SLURM job ids),
the worker logs, the TLS credentials and ``summary.json``. ``<runs>`` is
``$HPCSCALE_RUNS_DIR`` or the user's state directory (on a shared home, so
compute nodes can read the credentials).
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

if TYPE_CHECKING:
    from hpcscale.jobspec import JobSpec
    from hpcscale.profiles import SiteProfile
    from hpcscale.sizing import Plan


def runs_dir() -> Path:
    override = os.environ.get("HPCSCALE_RUNS_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_state_dir("hpcscale")) / "runs"


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


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class RunDir:
    run_id: str
    path: Path

    @classmethod
    def create(
        cls, spec: JobSpec, profile: SiteProfile, plan: Plan, *, trusted: bool = False,
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
        path = base / run_id
        path.mkdir(mode=0o700, exist_ok=(path / "state.json").is_file())
        os.chmod(path, 0o700)
        rd = cls(run_id, path)
        (path / "jobspec.toml").write_text(spec.to_toml(), encoding="utf-8")
        rd.write_json("profile.json", profile.model_dump(mode="json"))
        (path / "plan.txt").write_text("\n".join(plan.lines()) + "\n", encoding="utf-8")
        rd.write_json("plan.json", dataclasses.asdict(plan))
        rd.write_json("config-files.json", {
            "profiles": [str(p) for p in profile_files],
            "dask": _dask_config_files(),
            "trusted_profiles": trusted,
        })
        rd.update(run_id=run_id, state="created", created=time.time(), pid=os.getpid(),
                  host=os.uname().nodename, site=profile.name, output=spec.output.path)
        return rd

    def write_json(self, name: str, data: Any) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
        tmp.replace(self.path / name)

    def state(self) -> dict[str, Any]:
        try:
            data = json.loads((self.path / "state.json").read_text("utf-8"))
        except (OSError, ValueError):  # missing, not UTF-8, not JSON: an unknown state
            return {}
        return data if isinstance(data, dict) else {}

    def update(self, **changes: Any) -> None:
        state = self.state()
        state.update(changes, updated=time.time())
        self.write_json("state.json", state)

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
        with (self.path / "timeline.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str) + "\n")


def list_runs() -> list[RunDir]:
    base = runs_dir()
    if not base.is_dir():
        return []
    return [RunDir(p.name, p) for p in sorted(base.iterdir()) if (p / "state.json").exists()]
