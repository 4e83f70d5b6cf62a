"""The run history as the planner reads it, calibrations, SLURM's expected starts, and the
loop: a finished run's numbers make the next plan's prediction."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from helpers import Cli, write_profile
from hpcscale import predict, sizing, slurm
from hpcscale._fs import write_json
from hpcscale.config import profiles
from hpcscale.run import prediction
from hpcscale.rundir import RunDir, RunState, runs_dir

MiB = 1024**2
STEPS = '[{"filter": "median", "size": 5}]'


def _run(run_id: str, *, state: RunState = RunState.DONE, compute_s: float = 8.0,
         steps: str = STEPS, site: str = "s", resumed: int = 0, workers: int = 2,
         first: float | None = 12.0, extra: dict[str, Any] | None = None) -> RunDir:
    """A run directory as a finished run leaves it: 8 tasks of 1 MiB on 2 workers x 1 thread."""
    rd = RunDir(run_id, runs_dir() / run_id)
    rd.path.mkdir(parents=True)
    rd.update(run_id=run_id, state=state, site=site)
    work = sizing.Workload(chunks=8, chunk_bytes=MiB, bytes_in=8 * MiB, bytes_out=MiB,
                           steps=steps, kinds="filter:median", input="zarr float32")
    plan = sizing.Plan(site, "slurm", 2, 1, 1, 2**30, 600, work)
    write_json(rd.plan_json, dataclasses.asdict(plan))
    write_json(rd.summary, {"site": site, "compute_s": compute_s, "workers": workers,
                            "first_worker_s": first, "blocks": 8, "blocks_resumed": resumed,
                            **(extra or {})})
    return rd


def test_finished_runs_become_observations() -> None:
    _run("20260101-000000-aaaaaa")
    _run("20260101-000001-aaaaaa", state=RunState.FAILED)
    _run("20260101-000002-aaaaaa", resumed=3)  # partly an earlier run's work
    _run("20260101-000003-aaaaaa", steps="")  # an older run: no signature recorded
    _run("20260101-000004-aaaaaa", compute_s=0.0)
    broken = _run("20260101-000005-aaaaaa")
    broken.summary.write_text("{not json", encoding="utf-8")
    found = prediction.history()
    assert [o.origin for o in found] == ["20260101-000000-aaaaaa"]
    o = found[0]
    assert (o.site, o.tasks, o.threads, o.compute_s, o.first_worker_s) == ("s", 8, 2, 8.0, 12.0)
    assert o.rate == pytest.approx(MiB / 2)  # 4 rounds of 2 s


def test_each_finished_run_improves_the_next_prediction() -> None:
    work = sizing.Workload(chunks=32, chunk_bytes=MiB, bytes_in=32 * MiB, bytes_out=MiB,
                           steps=STEPS, kinds="filter:median", input="zarr float32")
    none = prediction.evidence("s", work)
    assert none.throughput is None
    assert "no finished run of these steps on site s yet; `hpcscale calibrate --site s JOB`" \
        in none.missing
    _run("20260101-000000-aaaaaa", compute_s=8.0)
    one = prediction.evidence("s", work)
    assert one.throughput is not None
    assert one.throughput.runs == 1
    _run("20260101-000001-aaaaaa", compute_s=2.0)
    two = prediction.evidence("s", work)
    assert two.throughput is not None
    assert two.throughput.runs == 2
    assert two.throughput.rate == pytest.approx(MiB)  # the geometric mean of 0.5 and 2 MiB/s
    assert two.startup is not None
    assert two.startup.runs == 2


def test_calibrations_are_kept_one_per_site_steps_and_input() -> None:
    sig = predict.Signature(STEPS, "filter:median", "zarr float32")
    entry = {"site": "s", "steps": STEPS, "kinds": sig.kinds, "input": sig.input,
             "chunk_bytes": MiB, "bytes_in": 3 * MiB, "tasks": 3, "compute_s": 1.5,
             "host": "login1", "when": time.time()}
    prediction.store_calibration(entry)
    prediction.store_calibration({**entry, "compute_s": 3.0})
    prediction.store_calibration({**entry, "site": "t"})
    assert len(prediction.calibrations()) == 2
    found = prediction.calibration("s", sig)
    assert found is not None
    assert found.rate == pytest.approx(MiB)
    assert found.origin.startswith("3 chunk(s) on login1, 1 thread")
    assert prediction.calibration("elsewhere", sig) is None


def test_expected_starts_stop_at_the_first_unanswered(user_sites: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    write_profile(user_sites, "s", '[slurm]\npartition = "p"\n')
    profile = profiles.load("s").profile
    soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() + 600))
    answers: list[slurm.ExpectedStart | None] = [
        slurm.ExpectedStart(soon, 4, "c[1-4]", "p"), None,
        slurm.ExpectedStart(soon, 1, "c1", "p")]
    asked: list[tuple[int, int]] = []

    def expected_start(s: object, *, jobs: int, walltime: int) -> slurm.ExpectedStart | None:
        asked.append((jobs, walltime))
        return answers[len(asked) - 1]

    monkeypatch.setattr(slurm, "available", lambda: True)
    monkeypatch.setattr(slurm, "expected_start", expected_start)
    found = prediction.expected_starts(profile, [(4, 600), (2, 600), (1, 600)])
    assert asked == [(4, 600), (2, 600)]
    assert [(s.jobs, s.walltime, s.at) for s in found] == [(4, 600, soon)]
    assert 590 <= found[0].wait_s <= 600
    monkeypatch.setattr(slurm, "available", lambda: False)
    assert prediction.expected_starts(profile, [(1, 600)]) == ()


def _median_spec(tmp_path: Path, planes: int) -> Path:
    data = np.random.default_rng(planes).random((planes, 128, 128)).astype("float32")
    inp = tmp_path / f"in-{planes}.zarr"
    zarr.create_array(inp, shape=data.shape, chunks=(1, 128, 128), dtype="float32")[...] = data
    spec = tmp_path / f"job-{planes}.toml"
    spec.write_text(f'[input]\npath = "{inp}"\n[[steps]]\nfilter = "median"\nsize = [1, 5, 5]\n'
                    f'[output]\npath = "{tmp_path / f"out-{planes}.zarr"}"\n', encoding="utf-8")
    return spec


def test_a_local_run_makes_the_next_plans_prediction(cli: Cli, tmp_path: Path) -> None:
    small, large = _median_spec(tmp_path, 4), _median_spec(tmp_path, 16)
    before = cli("--json", "plan", str(large), "--site", "local")
    assert before.code == 0, before
    assert json.loads(before.out)["prediction"]["compute_s"] is None
    ran = cli("--json", "submit", str(small), "--site", "local", "--jobs", "1")
    assert ran.code == 0, ran
    after = cli("--json", "plan", str(large), "--site", "local", "--jobs", "1")
    assert after.code == 0, after
    data = json.loads(after.out)
    predicted = data["prediction"]
    assert predicted["source"] == ("history of 1 run on site local "
                                   "(same steps, input and chunk size)")
    assert predicted["compute_low_s"] < predicted["compute_s"] < predicted["compute_high_s"]
    assert predicted["bytes_in"] == 16 * 128 * 128 * 4
    assert any(line.startswith("predicted       compute ") for line in data["plan"])
    # the run directory records the plan's forecast beside what the run measured
    record = json.loads(RunDir.find("last").plan_json.read_text(encoding="utf-8"))
    assert record["forecast"]["compute_s"] is None  # the first run had no history
    assert record["workload"]["kinds"] == "filter:median"


def test_calibrate_stores_a_figure_plan_uses(cli: Cli, tmp_path: Path) -> None:
    spec = _median_spec(tmp_path, 6)
    r = cli("calibrate", str(spec), "--site", "local", "--chunks", "2")
    assert r.code == 0, r
    assert "for site local: 2 chunk(s), 128KiB in" in r.out
    assert "1 thread" in r.out
    assert "per thread; stored in" in r.out
    assert not (tmp_path / "out-6.zarr").exists()  # nothing written but the figure
    plan = cli("--json", "plan", str(spec), "--site", "local")
    assert plan.code == 0, plan
    source = json.loads(plan.out)["prediction"]["source"]
    assert source.startswith("calibration on site local (2 chunk(s) on ")
    bad = cli("calibrate", str(spec), "--site", "local", "--chunks", "0")
    assert bad.code == 2
    assert "--chunks" in bad.err


def test_prepare_asks_slurm_about_the_plans_shapes_and_plans_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hpcscale import run
    from hpcscale.config import jobspec
    from hpcscale.run import preparation

    spec_path = _median_spec(tmp_path, 8)
    _run("20260101-000000-aaaaaa", site="testbed", steps=json.dumps(
        [{"filter": "median", "size": [1, 5, 5]}], sort_keys=True))
    now = time.time()
    asked: list[tuple[int, int]] = []

    def expected_start(s: object, *, jobs: int, walltime: int) -> slurm.ExpectedStart:
        asked.append((jobs, walltime))
        later = 3600 if jobs > 1 else 0  # one job starts now, more wait an hour
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now + later))
        return slurm.ExpectedStart(at, jobs, "c1", "debug")

    limits = slurm.Limits("debug", 3600, 3, 2, 4000 * MiB,
                          node_sizes=((2, 4000 * MiB),) * 3)
    monkeypatch.setattr(slurm, "available", lambda: True)
    monkeypatch.setattr(slurm, "expected_start", expected_start)
    monkeypatch.setattr(preparation, "live_limits", lambda profile: limits)
    prep = run.prepare(jobspec.load(spec_path), "testbed")
    plan = prep.plan
    assert asked[0] == (3, 1800)  # the plan's own shape first: max_jobs 3 of 30 min
    assert plan.jobs == 1  # one job now beats three in an hour
    assert plan.forecast is not None
    assert plan.forecast.start_wait_s is not None
    assert plan.forecast.start_wait_s < 60
    assert any(d.startswith("1 job(s): the soonest predicted result") for d in plan.decisions)
    assert any(line.startswith("expected start  now") for line in plan.lines())
