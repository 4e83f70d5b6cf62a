"""The throughput model and the plan's numbers from it, on canned histories."""

from __future__ import annotations

import math

import pytest

from hpcscale import predict
from hpcscale.predict import Evidence, Observation, Signature, Start, Startup, Throughput

MiB = 1024**2
MEDIAN = Signature('[{"filter": "median", "size": 5}]', "filter:median", "zarr float32")
MEDIAN_7 = Signature('[{"filter": "median", "size": 7}]', "filter:median", "zarr float32")
MEAN = Signature('[{"axis": [0], "reduce": "mean"}]', "reduce:mean", "zarr float32")


def _obs(rate: float, *, site: str = "s", sig: Signature = MEDIAN, tasks: int = 8,
         threads: int = 2, chunk: int = 4 * MiB, first: float | None = 10.0) -> Observation:
    """A run that computed ``tasks`` chunks of ``chunk`` bytes at ``rate`` bytes/s a thread."""
    rounds = math.ceil(tasks / threads)
    return Observation(site, sig, chunk_bytes=chunk, bytes_in=tasks * chunk, tasks=tasks,
                       threads=threads, compute_s=rounds * chunk / rate, first_worker_s=first)


def test_a_runs_rate_counts_its_tasks_in_rounds_of_its_threads() -> None:
    # 10 tasks of 1 MiB on 4 threads: 3 rounds; 6 s is 2 s a task, 0.5 MiB/s a thread
    o = Observation("s", MEDIAN, MiB, 10 * MiB, tasks=10, threads=4, compute_s=6.0)
    assert o.rate == pytest.approx(MiB / 2)
    # fewer tasks than threads: one round, the idle threads do not count
    o = Observation("s", MEDIAN, MiB, 2 * MiB, tasks=2, threads=8, compute_s=4.0)
    assert o.rate == pytest.approx(MiB / 4)


def test_throughput_is_the_geometric_mean_with_the_range_of_the_runs() -> None:
    runs = [_obs(r * MiB) for r in (1.0, 4.0, 2.0)]
    tp = predict.fit_throughput(runs, "s", MEDIAN, 4 * MiB)
    assert tp is not None
    assert tp.rate == pytest.approx(2 * MiB)
    assert (tp.low, tp.high) == (pytest.approx(MiB), pytest.approx(4 * MiB))
    assert tp.runs == 3
    assert tp.source == "history of 3 runs on site s (same steps, input and chunk size)"


def test_one_run_gets_the_least_spread() -> None:
    tp = predict.fit_throughput([_obs(2 * MiB)], "s", MEDIAN, 4 * MiB)
    assert tp is not None
    assert tp.low == pytest.approx(2 * MiB / predict.MIN_SPREAD)
    assert tp.high == pytest.approx(2 * MiB * predict.MIN_SPREAD)
    assert "history of 1 run on site s" in tp.source


def test_each_finished_run_moves_the_figure() -> None:
    runs = [_obs(MiB)]
    first = predict.fit_throughput(runs, "s", MEDIAN, 4 * MiB)
    runs.append(_obs(4 * MiB))
    second = predict.fit_throughput(runs, "s", MEDIAN, 4 * MiB)
    assert first is not None
    assert second is not None
    assert second.rate == pytest.approx(2 * MiB) != first.rate
    assert second.runs == 2


def test_the_most_specific_matching_runs_win() -> None:
    other_site = _obs(100 * MiB, site="elsewhere")
    other_chunks = _obs(8 * MiB, chunk=64 * MiB)
    other_size = _obs(50 * MiB, sig=MEDIAN_7)
    other_kind = _obs(500 * MiB, sig=MEAN)
    same = _obs(3 * MiB)
    everything = [other_site, other_chunks, other_size, other_kind, same]
    tp = predict.fit_throughput(everything, "s", MEDIAN, 4 * MiB)
    assert tp is not None
    assert tp.rate == pytest.approx(3 * MiB)
    # no run with chunks of this size: the same steps and input at any chunk size
    tp = predict.fit_throughput(everything[:-1], "s", MEDIAN, 4 * MiB)
    assert tp is not None
    assert tp.rate == pytest.approx(8 * MiB)
    assert "(same steps and input)" in tp.source
    # another input format, same steps
    tp = predict.fit_throughput([_obs(6 * MiB, sig=Signature(MEDIAN.steps, MEDIAN.kinds,
                                                             "tiff uint16"))],
                                "s", MEDIAN, 4 * MiB)
    assert tp is not None
    assert "(same steps)" in tp.source
    # only other parameters of the same filter
    tp = predict.fit_throughput([other_size, other_kind], "s", MEDIAN, 4 * MiB)
    assert tp is not None
    assert tp.rate == pytest.approx(50 * MiB)
    assert "same kinds of steps, other parameters" in tp.source
    assert predict.fit_throughput([other_site, other_kind], "s", MEDIAN, 4 * MiB) is None


def test_a_calibration_serves_when_no_run_did_these_steps() -> None:
    cal = Observation("s", MEDIAN, 4 * MiB, 12 * MiB, tasks=3, threads=1, compute_s=3.0,
                      origin="3 chunk(s) on login1, 1 thread")
    tp = predict.fit_throughput([], "s", MEDIAN, 4 * MiB, calibration=cal)
    assert tp is not None
    assert tp.rate == pytest.approx(4 * MiB)
    assert tp.source == "calibration on site s (3 chunk(s) on login1, 1 thread)"
    # ... and before runs of merely the same kind of step
    tp = predict.fit_throughput([_obs(50 * MiB, sig=MEDIAN_7)], "s", MEDIAN, 4 * MiB,
                                calibration=cal)
    assert tp is not None
    assert tp.source.startswith("calibration")
    # ... but a run of the same steps is measured on the site itself
    tp = predict.fit_throughput([_obs(2 * MiB)], "s", MEDIAN, 4 * MiB, calibration=cal)
    assert tp is not None
    assert tp.source.startswith("history")


def test_startup_is_the_sites_median_time_to_a_first_worker() -> None:
    runs = [_obs(MiB, first=f) for f in (5.0, 30.0, 7.0)] + [_obs(MiB, site="t", first=99.0),
                                                               _obs(MiB, first=None)]
    st = predict.fit_startup(runs, "s")
    assert st == Startup(7.0, 5.0, 30.0, 3)
    assert predict.fit_startup(runs, "nowhere") is None


# -- the plan's numbers ---------------------------------------------------------------------------

EVIDENCE = Evidence(Throughput(MiB, MiB / 2, 2 * MiB, 3, "history of 3 runs"),
                    Startup(20.0, 10.0, 40.0, 3))


def test_forecast_compute_wall_and_cpu_hours() -> None:
    # 40 tasks of 1 MiB on 2 jobs x 4 threads: 5 rounds of 1 s
    f = predict.forecast(EVIDENCE, tasks=40, bytes_in=40 * MiB, bytes_out=MiB, jobs=2,
                         threads_per_job=4, cores_per_job=4, walltime=3600)
    assert (f.compute_s, f.compute_low_s, f.compute_high_s) == (5.0, 2.5, 10.0)
    assert f.wall_s == 25.0
    assert f.cpu_hours_requested == 8.0  # 2 jobs x 4 cores x 1 h
    assert f.cpu_hours_predicted == pytest.approx(2 * 4 * 5 / 3600, abs=1e-3)
    assert f.generations == 1
    assert f.job_need_s == 20.0  # the quickest start-up, 10 s, and the slow end, 10 s
    assert f.fitting_walltime == 300
    assert (f.bytes_in, f.bytes_out) == (40 * MiB, MiB)
    text = "\n".join(f.lines())
    assert "predicted       compute 5.0 s (2.5 s to 10 s) on 8 thread(s): 40 tasks in 5 round(s)"\
        in text
    assert "from          history of 3 runs" in text
    assert "cpu-hours       8.00 requested (jobs x cores x walltime), about 0.01" in text


def test_forecast_without_a_throughput_says_why() -> None:
    f = predict.forecast(Evidence(missing="no run yet"), tasks=4, bytes_in=4, bytes_out=1,
                         jobs=1, threads_per_job=1, cores_per_job=1, walltime=600)
    assert not f.known
    assert f.compute_s is None
    assert f.lines()[0] == "predicted       unknown: no run yet"
    assert f.cpu_hours_requested == pytest.approx(600 / 3600, abs=1e-3)


@pytest.mark.parametrize(("need", "ceiling", "expected"), [
    (20, None, 300),  # 20 s + 120 s -> 5 min
    (400, None, 600),  # 400 + 200 -> 10 min
    (1000, None, 1500),  # 1000 + 500 -> 25 min
    (3 * 3600, None, 16200),  # 3 h + 1.5 h
    (3 * 3600, 4 * 3600, 4 * 3600),  # capped
])
def test_fitting_walltime(need: float, ceiling: int | None, expected: int) -> None:
    walltime = predict.fitting_walltime(need, ceiling)
    assert walltime == expected
    if ceiling is None:
        assert predict.lifetime(walltime)[0] >= need  # the worker outlives the work
        assert walltime % predict.AUTO_STEP == 0


def test_generations_past_the_walltime() -> None:
    assert predict.generations(100, 3600) == 1
    life = predict.lifetime(3600)[0]
    assert predict.generations(life + 1, 3600) == 2
    assert predict.generations(10 * 3600, 3600) == math.ceil(10 * 3600 / life)
    f = predict.forecast(EVIDENCE, tasks=8000, bytes_in=8000 * MiB, bytes_out=MiB, jobs=1,
                         threads_per_job=1, cores_per_job=1, walltime=3600)
    assert f.generations == 3  # 8000 s of compute, 3105 s a worker
    assert f.cpu_hours_requested == 3.0
    assert any(line.startswith("  generations   3: the run outlasts") for line in f.lines())


# -- --jobs auto: the soonest result --------------------------------------------------------------


def test_choose_jobs_takes_the_fewest_with_the_shortest_compute() -> None:
    # 12 tasks, 2 threads a job, up to 10 jobs: 1 round needs 6 jobs; more would idle
    n, why = predict.choose_jobs(EVIDENCE, tasks=12, bytes_in=12 * MiB, threads_per_job=2,
                                 ceiling=10, bound="max_jobs of site s")
    assert n == 6
    assert why.startswith("6 job(s): the fewest with the shortest predicted compute, 1.0 s "
                          "(12 tasks in 1 round(s) of 12 thread(s))")
    # 10 tasks, 2 threads, 4 jobs at most: 2 rounds need only 3 jobs
    n, _ = predict.choose_jobs(EVIDENCE, tasks=10, bytes_in=10 * MiB, threads_per_job=2,
                               ceiling=4, bound="b")
    assert n == 3


def test_choose_jobs_names_the_bound_that_holds_it_back() -> None:
    n, why = predict.choose_jobs(EVIDENCE, tasks=100, bytes_in=100 * MiB, threads_per_job=1,
                                 ceiling=3, bound="your association's MaxJobs")
    assert n == 3
    assert "more jobs would finish sooner, but your association's MaxJobs allows 3" in why


def test_choose_jobs_weighs_slurms_expected_starts() -> None:
    # 16 tasks of 60 MiB at 1 MiB/s, 4 threads a job: 1 job 240 s, 2 jobs 120 s, 4 jobs 60 s
    starts = (Start(4, 600, "2030-01-01T10:30:00", 1800.0),  # 4 jobs wait 30 min
              Start(2, 600, "2030-01-01T10:00:00", 0.0),
              Start(1, 600, "2030-01-01T10:00:00", 0.0))
    ev = Evidence(EVIDENCE.throughput, EVIDENCE.startup, starts)
    n, why = predict.choose_jobs(ev, tasks=16, bytes_in=16 * 60 * MiB, threads_per_job=4,
                                 ceiling=8, bound="b", walltime_for=lambda _: 600)
    assert n == 2
    assert why == ("2 job(s): the soonest predicted result, in about 2 min 20 s "
                   "(SLURM's expected start now + 2 min 00 s of compute), against "
                   "31 min 20 s with 4 job(s) (in 30 min 00 s)")
    # the starts of another walltime say nothing about this one
    n, _ = predict.choose_jobs(ev, tasks=16, bytes_in=16 * 60 * MiB, threads_per_job=4,
                               ceiling=8, bound="b", walltime_for=lambda _: 1200)
    assert n == 4


def test_alternatives_that_start_sooner_are_shown() -> None:
    starts = (Start(4, 3600, "2030-01-01T12:00:00", 7200.0),
              Start(2, 3600, "2030-01-01T10:00:00", 0.0),
              Start(4, 600, "2030-01-01T10:05:00", 300.0))
    ev = Evidence(EVIDENCE.throughput, EVIDENCE.startup, starts)
    f = predict.forecast(ev, tasks=16, bytes_in=16 * MiB, bytes_out=MiB, jobs=4,
                         threads_per_job=1, cores_per_job=1, walltime=3600)
    assert f.start == "2030-01-01T12:00:00"
    assert f.start_wait_s == 7200.0
    assert f.result_s == pytest.approx(7200 + 20 + 4)
    assert [(a.jobs, a.walltime, a.why) for a in f.alternatives] == [
        (2, 3600, "fewer jobs"), (4, 600, "a shorter walltime")]
    text = "\n".join(f.lines())
    assert "expected start  in 2 h 00 min (2030-01-01T12:00:00, SLURM's sbatch --test-only)" \
        in text
    assert "  sooner        2 job(s), walltime 01:00:00 (fewer jobs): now, result in about 28 s" \
        in text
