"""Running one contestant on one (case, size): a subprocess, timed from launch to exit.

Every contestant runs in a fresh process, so imports, memory and the time to
start count the same way for all. ``wall_s`` is launch to exit; ``compute_s``
is the part that does the work: for the clusters, from all workers connected
to the output written; for the in-process contestants, opening the input to
the output written (their imports happen before their clock starts).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from benchmarks import measure
from benchmarks.cases import Case
from benchmarks.inputs import Size

REPO = Path(__file__).resolve().parents[1]
JOBS = 2  # SLURM jobs x 1 core, local workers x 1 thread, threads: the same 2 cores
CONTESTANTS = ("numpy", "threaded", "read-only", "jobqueue", "hpcscale-testbed",
               "hpcscale-local")
# the hand-written script on a LocalCluster; hpcscale with the local default site
OPTIONAL = ("script-local", "hpcscale-default")
SLURM_CONTESTANTS = ("jobqueue", "hpcscale-testbed")
LOCAL_CONTESTANTS = tuple(c for c in CONTESTANTS if c not in SLURM_CONTESTANTS)

TESTBED_PROFILE = """\
name = "bench-testbed"
description = "benchmark: the testbed profile with the issue's job shape"
extends = "testbed"

[slurm]
cores = 1
processes = 1
memory = "1GiB"
"""
LOCAL_PROFILE = f"""\
name = "bench-local"
description = "benchmark: {JOBS} workers x 1 thread on this machine"
kind = "local"

[local]
workers = {JOBS}
threads = 1
"""


@dataclass
class Setup:
    """Where one benchmark run keeps things, how it reaches SLURM, its baseline server."""

    out: Path
    slurm_env: dict[str, str] | None
    timeout: float
    server: BaselineServer = field(init=False)

    _idle: dict[str, int | None] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.server = BaselineServer(self)

    def idle(self, kind: str) -> int | None:
        """The estimated idle memory of a worker of ``kind`` (measured once)."""
        if kind not in self._idle:
            modules = measure.HPCSCALE_WORKER_MODULES if kind == "hpcscale" else ()
            self._idle[kind] = measure.idle_estimate(modules, self.env())
        return self._idle[kind]

    @property
    def sites(self) -> Path:
        return self.out / "sites"

    def prepare(self) -> None:
        self.sites.mkdir(parents=True, exist_ok=True)
        os.chmod(self.sites, 0o700)  # hpcscale refuses profiles others can write
        (self.sites / "bench-testbed.toml").write_text(TESTBED_PROFILE)
        (self.sites / "bench-local.toml").write_text(LOCAL_PROFILE)

    def env(self) -> dict[str, str]:
        env = dict(self.slurm_env or os.environ)
        env["HPCSCALE_USER_SITES"] = str(self.sites)
        env["HPCSCALE_RUNS_DIR"] = str(self.out / "hpcscale-runs")
        env.pop("HPCSCALE_SITE", None)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        return env


def run(contestant: str, case: Case, size: Size, inp: Path, setup: Setup) -> dict[str, Any]:
    """Run one contestant; a dict of what was measured (``ok`` False and ``error`` on failure)."""
    work = setup.out / "work" / size.name / case.name / contestant
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    output = work / "output.zarr"
    record: dict[str, Any] = {"contestant": contestant, "case": case.name, "size": size.label,
                              "output": str(output), "ok": False, "error": None}
    record["load_before"] = os.getloadavg()[0]
    try:
        if contestant in ("numpy", "threaded", "read-only"):
            _baseline(contestant, case, inp, output, work, setup, record)
        elif contestant in ("jobqueue", "script-local"):
            _script(contestant, case, inp, output, work, setup, record)
        elif contestant in ("hpcscale-testbed", "hpcscale-local", "hpcscale-default"):
            _hpcscale(contestant, case, inp, output, work, setup, record)
        else:
            raise ValueError(f"unknown contestant {contestant!r}")
        record["ok"] = record["error"] is None
    except Exception as exc:  # one failed contestant must not end the benchmark
        record["error"] = f"{type(exc).__name__}: {exc}"
    record["load_after"] = os.getloadavg()[0]
    return record


def _launch(cmd: list[str], work: Path, setup: Setup) -> tuple[int, float, float, str]:
    """Run ``cmd`` in its own session; (exit code, launch time, seconds, stderr tail)."""
    with (work / "stdout.txt").open("wb") as out, (work / "stderr.txt").open("wb") as err:
        t0 = time.time()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=setup.env(), cwd=work,
                                start_new_session=True)
        try:
            code = proc.wait(timeout=setup.timeout)
        except subprocess.TimeoutExpired:
            _stop(proc)
            code = -9
        except BaseException:  # Ctrl-C reaches only the benchmark: the run has its own session
            _stop(proc)
            raise
        seconds = time.time() - t0
    tail = (work / "stderr.txt").read_text(errors="replace")[-2000:]
    if code == -9:
        tail = f"timed out after {setup.timeout:.0f} s\n{tail}"
    return code, t0, seconds, tail


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the run's process group (hpcscale and the script then cancel their
    jobs), SIGKILL if it has not ended after 30 s."""
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _fail(record: dict[str, Any], code: int, tail: str) -> None:
    lines = [ln for ln in tail.strip().splitlines() if ln.strip()]
    record["error"] = f"exit {code}: {lines[-1] if lines else 'no output'}"


class BaselineServer:
    """``python -m benchmarks.baselines serve``, started on first use: it forks one
    child per baseline run, its imports done once."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.proc: subprocess.Popen[str] | None = None

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.baselines", "serve"], text=True,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=self.setup.env(),
                cwd=self.setup.out)
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError("the baseline server died (see its stderr)")
        reply: dict[str, Any] = json.loads(answer)
        return reply

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _baseline(kind: str, case: Case, inp: Path, output: Path, work: Path, setup: Setup,
              record: dict[str, Any]) -> None:
    result = work / "result.json"
    reply = setup.server.request({
        "kind": kind, "case": case.name, "input": str(inp), "output": str(output),
        "result": str(result), "stderr": str(work / "stderr.txt"), "threads": JOBS,
        "timeout": setup.timeout})
    record["wall_s"] = reply["wall_s"]
    if reply["code"] != 0:
        tail = (work / "stderr.txt").read_text(errors="replace")[-2000:]
        _fail(record, reply["code"], tail)
        return
    res = json.loads(result.read_text())
    record.update(seconds=res["seconds"], compute_s=res["seconds"],
                  peak_memory=res["peak_memory"], base_memory=res["base_memory"],
                  threads_per_worker=1 if kind == "numpy" else JOBS)
    for key in ("phases", "bytes_read", "gbps"):
        if key in res:
            record[key] = res[key]
    if kind == "read-only":
        record["output"] = None


def _script(kind: str, case: Case, inp: Path, output: Path, work: Path, setup: Setup,
            record: dict[str, Any]) -> None:
    slurm = kind == "jobqueue"
    if slurm and setup.slurm_env is None:
        raise RuntimeError("the SLURM testbed is not up")
    result, logs = work / "result.json", work / "logs"
    name = f"bench-jq-{secrets.token_hex(3)}"
    cmd = [sys.executable, str(REPO / "benchmarks" / "jobqueue_script.py"), "--case", case.name,
           "--input", str(inp), "--output", str(output), "--result", str(result),
           "--jobs", str(JOBS), "--logs", str(logs), "--job-name", name]
    if not slurm:
        cmd.append("--local")
    ctld = measure.CtldLog(setup.slurm_env if slurm else None)
    try:
        code, t0, wall, tail = _launch(cmd, work, setup)
    finally:
        if setup.slurm_env is not None and slurm:
            record["left_in_queue"] = _sweep(setup.slurm_env, names=[name])
    record["wall_s"] = wall
    record["threads_per_worker"] = 1
    if code != 0:
        _fail(record, code, tail)
        return
    res = json.loads(result.read_text())
    times = res["times"]
    record.update(
        seconds=times["closed"] - times["start"],
        compute_s=times["written"] - times["loaded"],
        reported_first_worker_s=times["first_worker"] - times["start"],
        peak_memory=res["peak_memory"], base_memory=res["base_memory"], jobs=res["jobs"],
    )
    texts = [*measure.read_logs(logs), (work / "stderr.txt").read_text(errors="replace")]
    record["jobs_submitted"] = sorted({*res["jobs"], *measure.log_job_ids(logs)}, key=int)
    _timeline(record, t0, wall, texts, ctld.jobs(record["jobs_submitted"]),
              {"all_workers_seen": times["all_workers"], "libraries_loaded": times["loaded"],
               "written": times["written"]})
    record["base_memory_source"] = "measured on the workers, libraries imported"


def _hpcscale(kind: str, case: Case, inp: Path, output: Path, work: Path, setup: Setup,
              record: dict[str, Any]) -> None:
    slurm = kind == "hpcscale-testbed"
    if slurm and setup.slurm_env is None:
        raise RuntimeError("the SLURM testbed is not up")
    spec = {
        "description": f"benchmark {case.name} {record['size']}",
        "input": {"path": str(inp)},
        "steps": [dict(s) for s in case.steps],
        "output": {"path": str(output), "name": "result"},
    }
    spec_path = work / "job.toml"
    spec_path.write_text(tomli_w.dumps(spec))
    exe = Path(sys.executable).with_name("hpcscale")
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "hpcscale"]
    site = "bench-testbed" if slurm else "bench-local"
    cmd = [*cli, "--json", "submit", str(spec_path), "--site", site, "--jobs", str(JOBS)]
    if kind == "hpcscale-default":  # what a user gets: the local site as it comes
        cmd = [*cli, "--json", "submit", str(spec_path), "--site", "local"]
    (work / "command.txt").write_text(" ".join(cmd) + "\n")
    runs = setup.out / "hpcscale-runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    ctld = measure.CtldLog(setup.slurm_env if slurm else None)
    try:
        code, t0, wall, tail = _launch(cmd, work, setup)
    finally:
        new_runs = sorted(set(runs.iterdir()) - before) if runs.is_dir() else []
        if setup.slurm_env is not None and slurm:
            names = [f"hpcscale-{p.name}" for p in new_runs]
            record["left_in_queue"] = _sweep(setup.slurm_env, names=names)
    record["wall_s"] = wall
    record["threads_per_worker"] = (os.cpu_count() or 1) if kind == "hpcscale-default" else 1
    run_dir = new_runs[-1] if new_runs else None
    record["run_dir"] = str(run_dir) if run_dir else None
    if run_dir is not None:
        await_report(run_dir)
    if code != 0:
        _fail(record, code, tail)
        return
    try:
        summary = json.loads((work / "stdout.txt").read_text())
    except ValueError:
        record["error"] = "hpcscale --json printed no JSON summary (see stdout.txt)"
        return
    _from_summary(record, summary, setup)
    logs = run_dir / "logs" if run_dir else None
    texts = [*measure.read_logs(logs), (work / "stderr.txt").read_text(errors="replace")]
    record["jobs_submitted"] = sorted(
        {*record["jobs"], *map(str, summary.get("lost_jobs") or []),
         *map(str, summary.get("retired_jobs") or []), *measure.log_job_ids(logs)}, key=int)
    written = _written(output)
    _timeline(record, t0, wall, texts, ctld.jobs(record["jobs_submitted"]),
              {"written": written} if written else {})
    if record.get("left_in_queue"):
        record["error"] = (f"hpcscale exited leaving job(s) {', '.join(record['left_in_queue'])} "
                           "pending or running")


def _from_summary(record: dict[str, Any], summary: dict[str, Any], setup: Setup) -> None:
    """What hpcscale's --json summary says, into the record."""
    record["summary"] = summary
    record["seconds"] = summary.get("seconds")
    record["compute_s"] = summary.get("compute_s")
    # hpcscale's first_worker_s counts from its run's start; startup_s (when there) is
    # the command's start to that point: together, from the command's start.
    first, startup = summary.get("first_worker_s"), summary.get("startup_s")
    if first is not None and startup is not None:
        first += startup
    record["reported_first_worker_s"] = first
    record["peak_memory"] = summary.get("peak_memory") or None
    if summary.get("base_memory"):
        record["base_memory"] = summary["base_memory"]
        record["base_memory_source"] = "hpcscale summary"
    else:
        # The run's timeline is no help: its first sample of a worker's memory is the
        # one sent when it registered, before its warm-up imports.
        estimate = setup.idle("hpcscale")
        record["base_memory"] = {"estimate": estimate} if estimate else None
        record["base_memory_source"] = ("estimate: a fresh Python with a dask worker and "
                                        "hpcscale's worker modules imported")
    record["jobs"] = [str(j) for j in summary.get("jobs", [])]
    record["lost_jobs"] = [str(j) for j in summary.get("lost_jobs") or []]


def _written(output: Path) -> float | None:
    """When hpcscale finished its output: it marks the store complete last, rewriting
    the root metadata."""
    try:
        return max(p.stat().st_mtime for p in (output / "zarr.json", output / ".zattrs")
                   if p.exists())
    except ValueError:
        return None


def _timeline(record: dict[str, Any], t0: float, wall: float, texts: list[str],
              jobs: dict[str, dict[str, float]], extra: dict[str, float]) -> None:
    """Events in seconds from launch; first worker from launch and from the first sbatch."""
    events = measure.worker_events(texts)
    line: dict[str, float | None] = {}
    submits = [j["submit"] for j in jobs.values() if "submit" in j]
    allocs = [j["allocate"] for j in jobs.values() if "allocate" in j]
    line["submit"] = min(submits) - t0 if submits else None
    line["allocate"] = min(allocs) - t0 if allocs else None
    line["nanny_start"] = events["nanny_start"][0] - t0 if events["nanny_start"] else None
    line["worker_start"] = events["worker_start"][0] - t0 if events["worker_start"] else None
    reg = events["registered"]
    line["first_worker"] = reg[0] - t0 if reg else None
    line["all_workers"] = reg[JOBS - 1] - t0 if len(reg) >= JOBS else None
    for key, when in extra.items():
        line[key] = when - t0
    line["exit"] = wall
    record["timeline"] = line
    record["first_worker_s"] = line["first_worker"]
    if line["first_worker"] is not None and line["submit"] is not None:
        record["submit_to_first_worker_s"] = line["first_worker"] - line["submit"]


def _sweep(env: dict[str, str], names: list[str]) -> list[str]:
    """Jobs of this contestant still pending or running after it exited: cancelled,
    and returned (jobs SLURM is still completing do not count).

    Then waits (not timed) until SLURM has let every one of them go, so the next
    contestant finds the nodes free.
    """
    wanted = set(names)
    left = [i for i, n, state in measure.queue(env)
            if n in wanted and state not in ("COMPLETING", "COMPLETED", "CANCELLED")]
    if left:
        measure.cancel(env, ids=left)
    measure.wait_queue_empty(env, names=names)
    return left


def await_report(run_dir: Path, timeout: float = 60.0) -> None:
    """Until the run's report.html is drawn: a finished hpcscale run draws it in a child
    process after it exits, which must not share the cores with the next contestant."""
    deadline = time.monotonic() + timeout
    while not (run_dir / "report.html").is_file() and time.monotonic() < deadline:
        time.sleep(0.1)  # waiting for an event of another process: its file
