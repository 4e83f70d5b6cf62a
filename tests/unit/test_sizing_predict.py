"""The planner with a prediction: walltime = "auto", --jobs auto for the soonest result,
worker generations past MaxTime, and the shapes SLURM is asked about."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import write_profile
from hpcscale import predict, sizing
from hpcscale.config import jobspec, profiles
from hpcscale.errors import JobSpecError, ProfileError
from hpcscale.predict import Evidence, Start, Startup, Throughput
from hpcscale.slurm import Limits

MiB = 1024**2
GiB = 1024**3
LIMITS = Limits("p", max_time=4 * 3600, nodes=4, node_cpus=8, node_memory=32 * GiB)
# 1 MiB/s a thread; a first worker after 20 s (10 s at the quickest)
FAST = Evidence(Throughput(MiB, MiB / 1.25, MiB * 1.25, 2, "history of 2 runs on site s"),
                Startup(20.0, 10.0, 30.0, 2))
NONE = Evidence(missing="no finished run of these steps on site s yet")


def _profile(user_sites: Path, walltime: str = "01:00:00", cores: int = 2,
             max_jobs: int = 8) -> profiles.SiteProfile:
    write_profile(user_sites, "s", f'[slurm]\npartition = "p"\ncores = {cores}\n'
                  f'memory = "4GiB"\nmax_jobs = {max_jobs}\nwalltime = "{walltime}"\n')
    return profiles.load("s").profile


def _work(tasks: int, mib_each: int = 1) -> sizing.Workload:
    return sizing.Workload(chunks=tasks, chunk_bytes=mib_each * MiB,
                           bytes_in=tasks * mib_each * MiB, bytes_out=MiB)


def test_auto_walltime_is_the_prediction_plus_a_margin(user_sites: Path) -> None:
    # 16 tasks of 1 MiB on 8 jobs x 2 threads: 1 s; the job needs 10 s + 1.25 s
    plan = sizing.plan(_profile(user_sites), _work(16), 8, LIMITS, walltime="auto",
                       evidence=FAST)
    assert plan.walltime == predict.AUTO_STEP < 3600  # below the site's 1 h
    assert any(d.startswith('walltime 00:05:00 (walltime = "auto"): a worker job needs about '
                            "11 s") and "plus 50% (at least 120 s), rounded up to 5 min" in d
               for d in plan.decisions), plan.decisions
    assert "walltime        00:05:00" in plan.lines()
    assert plan.forecast is not None
    assert plan.forecast.generations == 1


def test_auto_walltime_without_a_prediction_is_the_sites(user_sites: Path) -> None:
    plan = sizing.plan(_profile(user_sites), _work(16), 8, LIMITS, walltime="auto",
                       evidence=NONE)
    assert plan.walltime == 3600
    assert any('walltime = "auto" without a prediction (no finished run of these steps on '
               "site s yet): the site's walltime 01:00:00" in d for d in plan.decisions)
    assert "predicted       unknown: no finished run of these steps on site s yet" \
        in plan.lines()


def test_a_spec_auto_stays_within_the_sites_walltime(user_sites: Path) -> None:
    # 4 h of compute on one thread: "auto" may not ask for more than the site's 1 h
    plan = sizing.plan(_profile(user_sites, cores=1), _work(4 * 3600), 1, LIMITS,
                       walltime="auto", evidence=FAST)
    assert plan.walltime == 3600
    assert plan.forecast is not None
    assert plan.forecast.generations == 5
    assert any("capped at 01:00:00: 6 generation(s) of workers" in d for d in plan.decisions), \
        plan.decisions  # the decision counts the slow end; the forecast the typical time


def test_a_site_auto_reaches_up_to_maxtime_and_says_the_generations(user_sites: Path) -> None:
    profile = _profile(user_sites, walltime="auto", cores=1)
    assert isinstance(profile, profiles.SlurmProfile)
    assert profile.slurm.auto_walltime
    # 10 h of compute on one thread, MaxTime 4 h
    plan = sizing.plan(profile, _work(10 * 3600), 1, LIMITS, evidence=FAST)
    assert plan.walltime == 4 * 3600
    assert plan.forecast is not None
    assert plan.forecast.generations == 3
    text = "\n".join(plan.lines())
    assert "generations   3: the run outlasts a worker's walltime" in text
    assert "capped at 04:00:00" in text
    # a short run on the same site: the fitting walltime, far below MaxTime
    plan = sizing.plan(profile, _work(60), 1, LIMITS, evidence=FAST)
    assert plan.walltime == 300
    # without a prediction: the default 1 h within MaxTime
    plan = sizing.plan(profile, _work(60), 1, Limits("p", 1800, 4, 8, 32 * GiB),
                       evidence=NONE)
    assert plan.walltime == 1800


def test_jobs_auto_with_a_prediction_takes_the_fewest_jobs_for_the_shortest_compute(
    user_sites: Path,
) -> None:
    # 12 tasks, 2 threads a job: 6 jobs finish in one round, more would idle
    plan = sizing.plan(_profile(user_sites), _work(12), "auto", LIMITS, evidence=FAST)
    assert plan.jobs == 6
    assert any(d.startswith("6 job(s): the fewest with the shortest predicted compute")
               for d in plan.decisions), plan.decisions
    # 100 tasks: max_jobs binds, and the decision says so
    plan = sizing.plan(_profile(user_sites), _work(100), "auto", LIMITS, evidence=FAST)
    assert plan.jobs == 8
    assert any("more jobs would finish sooner, but max_jobs of site s allows 8" in d
               for d in plan.decisions), plan.decisions
    # ... or the nodes: 4 nodes of 8 cores hold 16 2-core jobs (memory: 8 of 4 GiB a node);
    # 16 jobs take 4 rounds of the 100 tasks, and so do 13
    plan = sizing.plan(_profile(user_sites, max_jobs=40), _work(100), "auto", LIMITS,
                       evidence=FAST)
    assert plan.jobs == 13
    assert any("but the 16 that fit at once on the 4 node(s) of partition p" in d
               for d in plan.decisions), plan.decisions


def test_jobs_auto_weighs_slurms_expected_starts(user_sites: Path) -> None:
    profile = _profile(user_sites)
    first = sizing.plan(profile, _work(16, mib_each=60), "auto", LIMITS, evidence=FAST)
    assert first.jobs == 8
    assert first.forecast is not None
    assert first.forecast.shapes == ((8, 3600), (4, 3600), (1, 3600), (8, 300))
    starts = (Start(8, 3600, "2030-01-01T11:00:00", 3600.0),
              Start(4, 3600, "2030-01-01T10:00:00", 0.0),
              Start(1, 3600, "2030-01-01T10:00:00", 0.0))
    plan = sizing.plan(profile, _work(16, mib_each=60), "auto", LIMITS,
                       evidence=Evidence(FAST.throughput, FAST.startup, starts))
    assert plan.jobs == 4  # 2 rounds of 60 s now, not 1 round in an hour
    assert any(d.startswith("4 job(s): the soonest predicted result") for d in plan.decisions)
    assert plan.forecast is not None
    assert plan.forecast.start_wait_s == 0.0


def test_no_evidence_plans_as_before(user_sites: Path) -> None:
    plan = sizing.plan(_profile(user_sites), _work(16), "auto", LIMITS)
    assert plan.forecast is None
    assert not any(line.startswith(("predicted", "cpu-hours")) for line in plan.lines())
    assert any("give each of the 2 thread(s) per job at least 2" in d for d in plan.decisions)


def test_a_local_plan_predicts_compute_without_cpu_hours() -> None:
    plan = sizing.plan(profiles.load("local").profile, _work(8), 2, None, evidence=FAST)
    assert plan.forecast is not None
    assert plan.forecast.compute_s is not None
    assert plan.forecast.cpu_hours_requested is None
    assert plan.forecast.generations is None


def test_walltime_auto_in_profiles_and_job_specs(user_sites: Path) -> None:
    profile = _profile(user_sites, walltime="auto")
    assert isinstance(profile, profiles.SlurmProfile)
    assert profile.slurm.walltime == "auto"
    assert profile.slurm.walltime_seconds == 3600
    write_profile(user_sites, "bad", '[slurm]\npartition = "p"\nwalltime = "soon"\n')
    with pytest.raises(ProfileError, match=r"slurm.walltime = 'soon': expected a SLURM walltime "
                                           r"\(MM, MM:SS, HH:MM:SS or D-HH:MM:SS\) or \"auto\""):
        profiles.load("bad")
    spec = jobspec.parse({"input": {"path": "x"}, "steps": [{"reduce": "mean"}],
                          "output": {"path": "y"}, "run": {"walltime": "auto"}}, "job.toml")
    assert spec.run.walltime_auto
    assert spec.run.walltime_seconds is None
    assert 'walltime = "auto"' in spec.to_toml()
    with pytest.raises(JobSpecError, match=r'or "auto", got \'later\''):
        jobspec.parse({"input": {"path": "x"}, "steps": [{"reduce": "mean"}],
                       "output": {"path": "y"}, "run": {"walltime": "later"}}, "job.toml")
