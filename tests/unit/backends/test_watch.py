"""What a failed SLURM query means: "unknown", never "every job is gone" (issue 16,
defect 7), with a fake squeue that fails the way a controller outage makes it fail.
Also where a run's dask logs and its workers' errors are found (defects 5, 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import zarr

from hpcscale import run, slurm
from hpcscale.backends import watch
from hpcscale.run import execution
from hpcscale.run import history as runs
from hpcscale.rundir import RunDir

OUTAGE = "squeue: error: Unable to contact slurm controller (connect failure)"


class FakeSlurm:
    """squeue/scontrol/scancel on PATH that answer what the test says."""

    def __init__(self, bin_dir: Path) -> None:
        self.dir = bin_dir
        bin_dir.mkdir()
        for cmd in ("squeue", "scontrol", "scancel", "sbatch"):
            script = bin_dir / cmd
            script.write_text(textwrap.dedent(f"""\
                #!/bin/sh
                echo "$@" >> {bin_dir}/{cmd}.calls
                cat {bin_dir}/{cmd}.out 2>/dev/null
                cat {bin_dir}/{cmd}.err >&2 2>/dev/null
                exit $(cat {bin_dir}/{cmd}.code 2>/dev/null || echo 0)
                """))
            script.chmod(0o755)

    def answer(self, cmd: str, out: str = "", err: str = "", code: int = 0) -> None:
        (self.dir / f"{cmd}.out").write_text(out)
        (self.dir / f"{cmd}.err").write_text(err)
        (self.dir / f"{cmd}.code").write_text(str(code))

    def running(self, *ids: str) -> None:
        self.answer("squeue", "".join(f"{j}|hpcscale-x|RUNNING|None|c{j[-1]}|debug\n"
                                      for j in ids))

    def outage(self) -> None:
        self.answer("squeue", err=OUTAGE + "\n", code=1)

    def calls(self, cmd: str) -> list[str]:
        path = self.dir / f"{cmd}.calls"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeSlurm:
    f = FakeSlurm(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{f.dir}{os.pathsep}{os.environ['PATH']}")
    return f


def test_a_failed_squeue_is_unknown_not_every_job_gone(fake: FakeSlurm) -> None:
    fake.outage()
    with pytest.raises(slurm.SlurmUnavailable, match="Unable to contact slurm controller"):
        slurm.queue(["11", "12"])
    fake.answer("squeue", err="slurm_load_jobs error: Socket timed out on send/recv\n", code=1)
    with pytest.raises(slurm.SlurmUnavailable, match="Socket timed out"):
        slurm.queue(name="hpcscale-x")


def test_squeue_saying_every_listed_job_is_gone_is_an_answer(fake: FakeSlurm) -> None:
    fake.answer("squeue", err="slurm_load_jobs error: Invalid job id specified\n", code=1)
    assert slurm.queue(["11"]) == {}
    fake.running("11")
    assert set(slurm.queue(["11", "12"])) == {"11"}


class FakeCluster:
    """What JobWatcher uses of a dask-jobqueue cluster: three jobs, their workers."""

    def __init__(self) -> None:
        self.workers = {f"w{i}": SimpleNamespace(job_id=f"1{i}") for i in (1, 2, 3)}
        self.worker_spec: dict[str, Any] = {name: {} for name in self.workers}
        self.scheduler_info: dict[str, Any] = {"workers": {
            f"tcp://10.0.0.{i}:1": {"name": f"w{i}"} for i in (1, 2, 3)}}
        self.loop = SimpleNamespace(add_callback=lambda fn: None)
        self.submitted = 0

    def new_worker_spec(self) -> dict[str, Any]:
        self.submitted += 1
        return {f"new{self.submitted}": {}}

    def _correct_state(self) -> None:
        pass

    def leave(self, name: str) -> None:
        self.scheduler_info["workers"] = {a: w for a, w in
                                          self.scheduler_info["workers"].items()
                                          if w["name"] != name}


def test_an_outage_of_the_controller_loses_no_job_and_submits_none(fake: FakeSlurm) -> None:
    clus, said = FakeCluster(), []
    w = watch.JobWatcher(clus, walltime=3600, say=said.append)
    fake.running("11", "12", "13")
    w.poll(3, force=True)
    assert w.answered
    assert set(w.states) == {"11", "12", "13"}

    fake.outage()
    for _ in range(3):
        w.poll(3, force=True)
    assert w.lost == []
    assert clus.submitted == 0
    assert w.replacements == 0
    assert set(w.states) == {"11", "12", "13"}  # the last known states stand
    assert [s for s in said if s.startswith("SLURM did not answer")] == [
        "SLURM did not answer (squeue: error: Unable to contact slurm controller (connect "
        "failure)); the jobs are left as they are until it answers again"]

    fake.running("11", "12", "13")
    w.poll(3, force=True)
    assert said[-1].startswith("SLURM answers again, after ")
    assert w.lost == []
    assert clus.submitted == 0


def test_a_job_is_lost_only_when_squeue_and_the_scheduler_agree(fake: FakeSlurm) -> None:
    clus, said = FakeCluster(), []
    w = watch.JobWatcher(clus, walltime=3600, say=said.append)
    fake.running("11", "12", "13")
    w.poll(3, force=True)
    fake.running("11", "13")  # squeue no longer lists 12, but its worker is still there
    w.poll(3, force=True)
    assert w.lost == []
    assert clus.submitted == 0
    clus.leave("w2")  # now its worker left too: lost, and replaced
    w.poll(2, force=True)
    assert w.lost == ["12"]
    assert clus.submitted == 1
    assert "job 12 was lost (cancelled, killed or pre-empted)" in said[-2]


def test_replacements_waiting_in_the_queue_never_exceed_the_planned_jobs(
    fake: FakeSlurm,
) -> None:
    # A run of 2 jobs whose workers near their lifetime, while 2 replacements already
    # wait in the queue (a retiring worker's job stays until its task ends, so
    # generations overlap): nothing more is asked for until one of them starts.
    clus, said = FakeCluster(), []
    clus.workers = {"w1": SimpleNamespace(job_id="11"), "w2": SimpleNamespace(job_id="12"),
                    "r1": SimpleNamespace(job_id="21"), "r2": SimpleNamespace(job_id="22")}
    clus.worker_spec = {name: {} for name in clus.workers}
    w = watch.JobWatcher(clus, walltime=120, say=said.append, target=2)

    def queue(running: tuple[str, ...], pending: tuple[str, ...]) -> None:
        fake.answer("squeue", "".join(f"{j}|hpcscale-x|RUNNING|None|c1|debug\n"
                                      for j in running)
                    + "".join(f"{j}|hpcscale-x|PENDING|Resources||debug\n" for j in pending))

    queue(("11", "12"), ("21", "22"))
    w.poll(2, force=True)
    for job in ("11", "12"):
        w._started[job] -= 3600  # long past their lifetime: each wants its replacement
    w.poll(2, force=True)
    assert clus.submitted == 0, said  # two wait already
    queue(("11", "12", "21"), ("22",))  # one replacement started: one place free
    w.poll(2, force=True)
    assert clus.submitted == 1, said
    clus.workers["r3"] = SimpleNamespace(job_id="23")  # sbatch gave it an id: it waits too
    queue(("11", "12", "21"), ("22", "23"))
    w.poll(2, force=True)
    assert clus.submitted == 1, said  # two wait again


class SpecLikeCluster(FakeCluster):
    """FakeCluster whose ``_correct_state`` submits what ``worker_spec`` has and
    ``workers`` lacks, as distributed's SpecCluster does, and which drops a worker
    that left the scheduler from ``workers`` only (keeping its spec entry)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = SimpleNamespace(add_callback=lambda fn: fn())
        self.opened: list[str] = []
        self.next_id = 30

    def _correct_state(self) -> None:
        for name in set(self.workers) - set(self.worker_spec):
            del self.workers[name]
        for name in sorted(set(self.worker_spec) - set(self.workers)):
            self.next_id += 1
            self.opened.append(name)
            self.workers[name] = SimpleNamespace(job_id=str(self.next_id))

    def drop(self, name: str) -> None:
        self.leave(name)
        del self.workers[name]  # SpecCluster closed its job; its spec entry stays


def test_a_job_the_cluster_closed_itself_is_not_submitted_again(fake: FakeSlurm) -> None:
    # A worker retires (--lifetime) and leaves; SpecCluster closes its job and forgets
    # it, but keeps its worker_spec entry: without the watcher removing that entry, the
    # next replacement's _correct_state would submit the retired job again (the pile-up
    # seen on a loaded machine: 6 running and 6 pending jobs for a plan of 2).
    clus, said = SpecLikeCluster(), []
    w = watch.JobWatcher(clus, walltime=120, say=said.append, target=3)
    fake.running("11", "12", "13")
    w.poll(3, force=True)
    clus.drop("w1")
    fake.running("12", "13")
    w.poll(2, force=True)
    assert clus.opened == ["new1"], said  # one replacement, and w1 is not resubmitted
    assert "w1" not in clus.worker_spec
    assert w.lost == ["11"]
    fake.running("12", "13", "31")
    w._started["12"] -= 3600  # w2 nears its lifetime: its replacement is submitted
    w.poll(3, force=True)
    assert clus.opened == ["new1", "new2"], said
    clus.drop("w2")
    fake.running("13", "31", "32")
    w.poll(3, force=True)
    assert clus.opened == ["new1", "new2"], said  # already replaced: nothing more
    assert w.retired == ["12"]
    assert set(clus.worker_spec) == {"w3", "new1", "new2"}


def test_the_worker_wait_does_not_give_up_while_slurm_is_silent(
    fake: FakeSlurm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rd = RunDir("20260101-000000-abcdef", tmp_path / "run")
    rd.path.mkdir()
    clus = FakeCluster()
    clus.scheduler_info["workers"] = {}
    w = watch.JobWatcher(clus, walltime=3600, say=lambda s: None)
    fake.outage()  # never answered: not "all jobs ended"
    polls: list[int] = []

    class Client:
        def scheduler_info(self, n_workers: int) -> dict[str, Any]:
            polls.append(1)
            if len(polls) < 4:
                return {"workers": {}}
            return {"workers": {"tcp://a:1": {}}}  # a worker connects after a few rounds

        def run(self, *a: Any, **k: Any) -> None:
            pass

    monkeypatch.setattr(RunDir, "sample", lambda *a, **k: None)
    monkeypatch.setattr(execution.time, "sleep", lambda s: None)
    got = execution._wait_for_workers(Client(), w, 1, run.Silent(), rd, 0.0)
    assert got is not None
    assert len(polls) == 4


def test_status_while_slurm_is_silent_does_not_call_a_batch_run_lost(
    fake: FakeSlurm, tmp_path: Path
) -> None:
    rd = RunDir("20260101-000000-abcdef", Path(os.environ["HPCSCALE_RUNS_DIR"]) /
                "20260101-000000-abcdef")
    rd.path.mkdir(parents=True)
    rd.update(state="running", batch_job="77", batch=True)
    fake.outage()
    info = runs.status(rd.run_id)
    assert info["state"] == "running"
    assert "did not answer" in info["slurm"]
    fake.answer("squeue", "")  # answered: the batch job is gone
    assert runs.status(rd.run_id)["state"] == "lost"


def test_cleanup_cancels_nothing_on_a_guess_while_slurm_is_silent(fake: FakeSlurm) -> None:
    rd = RunDir("20260101-000000-abcdef", Path(os.environ["HPCSCALE_RUNS_DIR"]) /
                "20260101-000000-abcdef")
    rd.path.mkdir(parents=True)
    rd.update(state="running", batch_job="77", batch=True)
    fake.outage()
    with pytest.raises(slurm.SlurmUnavailable):
        runs.cleanup()
    assert fake.calls("scancel") == []
    assert rd.status().state == "running"


def test_last_error_reads_the_profile_log_directory_and_names_the_node(
    fake: FakeSlurm, tmp_path: Path
) -> None:
    logs = tmp_path / "site-logs"
    logs.mkdir()
    name = "hpcscale-20260101-000000-abcdef"
    (logs / f"{name}-41.err").write_text(
        "Traceback (most recent call last):\n  File x\nValueError: 'tbr0' is not a valid "
        "network interface. Valid network interfaces are: ['lo', 'tbn1']\n\n"
        "The above exception was the direct cause of the following exception:\n\n"
        "Traceback (most recent call last):\n  File y\nRuntimeError: Worker failed to start.\n")
    (logs / f"{name}-42.err").write_text("OSError: later job\n")
    (logs / "hpcscale-20250101-000000-other-40.err").write_text("RuntimeError: another run\n")
    fake.answer("scontrol", "JobId=41 JobName=x JobState=FAILED NodeList=c2 BatchHost=c2\n")
    got = execution._last_error(logs, name)
    assert got == (f"job 41 on node c2: ValueError: 'tbr0' is not a valid network interface. "
                   f"Valid network interfaces are: ['lo', 'tbn1'] (log: {logs}/{name}-41.err)")


_EMIT = """
import logging, sys
from hpcscale import report
from hpcscale.run import compute
from hpcscale.cli import main
from distributed.comm.core import CommClosedError

def closed(when):
    try:
        raise CommClosedError(f"in <TCP (closed) Scheduler connection>: {when}")
    except CommClosedError:
        logging.getLogger("distributed.batched").info("Batched Comm Closed", exc_info=True)

real_write, real_report = compute.write_result, report.write_report

def write_result(*args, **kwargs):
    closed("mid-run")  # while the cluster runs (dask-jobqueue turns stderr down to ERROR)
    return real_write(*args, **kwargs)

def write_report(*args, **kwargs):
    closed("at teardown")  # the cluster closed: distributed's stderr handler is back at INFO
    return real_report(*args, **kwargs)

compute.write_result, report.write_report = write_result, write_report
sys.argv = ["hpcscale", "--json", "submit", sys.argv[1], "--site", sys.argv[2], "--jobs", "1"]
main()
"""


@pytest.mark.parametrize("site", ["local", pytest.param("testbed", marks=pytest.mark.slurm)])
def test_distributed_log_records_go_to_the_run_log_not_the_terminal(
    tmp_path: Path, site: str, request: pytest.FixtureRequest
) -> None:
    if site == "testbed":
        request.getfixturevalue("testbed")
    inp = tmp_path / "in.zarr"
    zarr.create_array(inp, shape=(4, 8), chunks=(2, 8), dtype="float32")[...] = np.ones((4, 8))
    spec = tmp_path / "job.toml"
    spec.write_text(f'[input]\npath = "{inp}"\n[[steps]]\nreduce = "sum"\naxis = [0]\n'
                    f'[output]\npath = "{tmp_path / "out.zarr"}"\n')
    done = subprocess.run([sys.executable, "-c", _EMIT, str(spec), site], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ), check=False)
    assert done.returncode == 0, done.stderr
    assert "Batched Comm Closed" not in done.stderr
    assert "Traceback" not in done.stderr
    assert "distributed." not in done.stderr
    summary = json.loads(done.stdout)
    run_dir = Path(summary["run_dir"])
    log = RunDir(run_dir.name, run_dir).dask_log.read_text()
    # two of ours, and on SLURM at times distributed's own (the one the issue saw)
    assert log.count("distributed.batched INFO Batched Comm Closed") >= 2
    assert "CommClosedError: in <TCP (closed) Scheduler connection>: mid-run" in log
    assert "CommClosedError: in <TCP (closed) Scheduler connection>: at teardown" in log
