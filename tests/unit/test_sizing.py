"""Sizing rules as pure functions: a table of workloads, profiles and limits."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from helpers import write_profile
from hpcscale import sizing
from hpcscale.config import profiles
from hpcscale.errors import SizingError
from hpcscale.slurm import Limits

MiB = 1024**2
GiB = 1024**3
SITE = """
[slurm]
partition = "p"
cores = {cores}
processes = {processes}
memory = "{memory}"
max_jobs = {max_jobs}
walltime = "{walltime}"
"""


def _profile(user_sites: Path, cores: int = 4, processes: int = 1, memory: str = "8GiB",
             max_jobs: int = 10, walltime: str = "01:00:00") -> profiles.SiteProfile:
    write_profile(user_sites, "s", SITE.format(cores=cores, processes=processes, memory=memory,
                                               max_jobs=max_jobs, walltime=walltime))
    return profiles.load("s").profile


def _work(chunks: int, chunk_mib: int = 8, out_chunks: int = 1) -> sizing.Workload:
    return sizing.Workload(chunks=chunks, chunk_bytes=chunk_mib * MiB,
                           bytes_in=chunks * chunk_mib * MiB, bytes_out=MiB,
                           output_chunks=out_chunks)


LIMITS = Limits("p", max_time=4 * 3600, nodes=6, node_cpus=16, node_memory=64 * GiB)

# (profile kwargs, chunks, jobs, limits, expected jobs, phrase in a decision)
TABLE = [
    ({}, 1, "auto", LIMITS, 1, "1 job(s) give each of the 4 thread(s)"),
    ({}, 16, "auto", LIMITS, 2, "2 job(s) give each"),
    # 4 cores of 16 per node: 4 jobs fit on each of the 6 nodes, 24 in all
    ({}, 64, "auto", LIMITS, 8, "8 job(s) give each"),
    ({"cores": 16}, 64, 20, LIMITS, 6,
     "capped at 6 job(s) by the 6 that fit at once on the 6 node(s) of partition p "
     "(1 per node, by cores and memory)"),
    ({"max_jobs": 3}, 64, "auto", LIMITS, 3, "capped at 3 job(s) by max_jobs of site s"),
    ({}, 64, "auto", None, 8, "8 job(s) give each"),
    ({}, 64, 5, LIMITS, 5, "5 job(s): as asked"),
    ({"max_jobs": 40}, 64, 30, LIMITS, 24,
     "capped at 24 job(s) by the 24 that fit at once on the 6 node(s)"),
    # memory binds: 8 GiB jobs on 16 GiB nodes, 2 a node whatever the cores
    ({"cores": 2}, 64, 30, Limits("p", None, 3, 16, 16 * GiB), 6,
     "(2 per node, by cores and memory)"),
    ({"cores": 1}, 5, "auto", LIMITS, 3, "3 job(s) give each of the 1 thread(s)"),
    ({}, 64, "auto", Limits("p", None, 100, 16, 64 * GiB, max_jobs=4), 4,
     "capped at 4 job(s) by your association's MaxJobs"),
    ({}, 64, "auto", Limits("p", None, 100, 16, 64 * GiB, max_submit=2), 2,
     "capped at 2 job(s) by your association's MaxSubmitJobs"),
]


@pytest.mark.parametrize(("kw", "chunks", "jobs", "limits", "expected", "phrase"), TABLE)
def test_plan_table(user_sites: Path, kw: dict[str, object], chunks: int, jobs: int | str,
                    limits: Limits | None, expected: int, phrase: str) -> None:
    plan = sizing.plan(_profile(user_sites, **kw), _work(chunks), jobs, limits)  # type: ignore[arg-type]
    assert plan.jobs == expected
    assert any(phrase in d for d in plan.decisions), plan.decisions
    text = "\n".join(plan.lines())
    assert f"jobs            {expected} x 1 worker(s)" in text


# The partition of the issue: 3 nodes of 2 CPUs and about 6 GB; 1-core, 2 GiB jobs.
SMALL_NODES = Limits("compute", None, 3, 2, 6000 * MiB, node_sizes=((2, 6000 * MiB),) * 3)


def test_several_jobs_per_node_count_against_the_cap(user_sites: Path) -> None:
    plan = sizing.plan(_profile(user_sites, cores=1, memory="2GiB", max_jobs=6), _work(64), "auto",
                       SMALL_NODES)
    assert plan.jobs == 6
    assert not any("fit at once" in d for d in plan.decisions), plan.decisions


@pytest.mark.parametrize(("sizes", "cores", "memory", "fit", "per_node"), [
    (((2, 6000 * MiB),) * 3, 1, 2048 * MiB, 6, [2, 2, 2]),
    (((16, 64 * GiB), (4, 64 * GiB)), 4, 8 * GiB, 5, [4, 1]),  # nodes of different sizes
    (((16, 16 * GiB), (16, 64 * GiB)), 2, 8 * GiB, 10, [2, 8]),  # memory binds on one
    (((2, 6000 * MiB),), 4, GiB, 0, [0]),  # too many cores for any node
])
def test_jobs_fit_counts_each_node(sizes: tuple[tuple[int, int], ...], cores: int, memory: int,
                                   fit: int, per_node: list[int]) -> None:
    lim = Limits("p", None, len(sizes), max(c for c, _ in sizes), max(m for _, m in sizes),
                 node_sizes=sizes)
    assert lim.jobs_fit(cores, memory) == (fit, per_node)


def test_walltime_clamped_to_association(user_sites: Path) -> None:
    lim = Limits("p", None, 10, 16, 64 * GiB, max_wall=1800)
    plan = sizing.plan(_profile(user_sites), _work(4), "auto", lim)
    assert plan.walltime == 1800
    assert any("walltime clamped to 00:30:00 by your association's MaxWall" in d
               for d in plan.decisions)


def test_inode_warning_suggests_shards(user_sites: Path) -> None:
    plan = sizing.plan(_profile(user_sites), _work(4, out_chunks=250_000), "auto", LIMITS)
    assert any("250000 files" in d and "shards" in d for d in plan.decisions)
    quiet = sizing.plan(_profile(user_sites), _work(4, out_chunks=1000), "auto", LIMITS)
    assert not any("files" in d for d in quiet.decisions)


@pytest.mark.parametrize(
    ("kw", "limits", "message"),
    [
        ({"walltime": "05:00:00"}, LIMITS,
         "walltime 05:00:00 is over partition p's MaxTime 04:00:00"),
        ({"cores": 32}, LIMITS, "cores=32 but the largest node of partition p has 16"),
        ({"memory": "128GiB"}, LIMITS,
         "memory=128GiB but the largest node of partition p has 64GiB"),
    ],
)
def test_refused_before_submitting(user_sites: Path, kw: dict[str, object], limits: Limits,
                                   message: str) -> None:
    with pytest.raises(SizingError, match=message):
        sizing.plan(_profile(user_sites, **kw), _work(4), "auto", limits)  # type: ignore[arg-type]


def test_chunk_larger_than_a_worker_is_refused(user_sites: Path) -> None:
    # 8GiB per job, 4 threads: 2GiB per thread; a 1GiB chunk needs ~4GiB
    with pytest.raises(SizingError, match=r"a chunk needs about 4GiB .* rechunk"):
        sizing.plan(_profile(user_sites), _work(4, chunk_mib=1024), "auto", LIMITS)
    # 4 processes x 1 thread: 2GiB each; a 768MiB chunk needs ~3GiB
    with pytest.raises(SizingError, match="worker thread has 2GiB"):
        sizing.plan(_profile(user_sites, processes=4), _work(4, chunk_mib=768), "auto", LIMITS)
    ok = sizing.plan(_profile(user_sites), _work(4, chunk_mib=256), "auto", LIMITS)
    assert ok.task_memory == 1 * GiB


def test_jobs_below_one_refused(user_sites: Path) -> None:
    with pytest.raises(SizingError, match="--jobs 0"):
        sizing.plan(_profile(user_sites), _work(4), 0, LIMITS)


# -- the job spec's [run] walltime caps the workers' walltime ------------------------------------


def test_spec_walltime_below_the_sites_is_used(user_sites: Path) -> None:
    plan = sizing.plan(_profile(user_sites), _work(4), "auto", LIMITS, walltime=1800)
    assert plan.walltime == 1800
    assert "walltime        00:30:00" in plan.lines()
    assert any("walltime 00:30:00 from the job spec's [run] walltime" in d
               for d in plan.decisions), plan.decisions


def test_spec_walltime_over_the_sites_is_clamped(user_sites: Path) -> None:
    plan = sizing.plan(_profile(user_sites), _work(4), "auto", LIMITS, walltime=3 * 3600)
    assert plan.walltime == 3600
    assert any("the job spec's [run] walltime 03:00:00 is over site s's walltime 01:00:00"
               in d and "clamped" in d for d in plan.decisions), plan.decisions


def test_spec_walltime_brings_a_long_site_under_maxtime(user_sites: Path) -> None:
    # The site's 05:00:00 is over MaxTime 04:00:00; this run asks for 02:00:00 only.
    plan = sizing.plan(_profile(user_sites, walltime="05:00:00"), _work(4), "auto", LIMITS,
                       walltime=7200)
    assert plan.walltime == 7200


def test_spec_walltime_over_maxtime_is_refused(user_sites: Path) -> None:
    with pytest.raises(SizingError, match=r"walltime 06:00:00 \(the job spec's \[run\] "
                                          r"walltime\) is over partition p's MaxTime 04:00:00"):
        sizing.plan(_profile(user_sites, walltime="08:00:00"), _work(4), "auto", LIMITS,
                    walltime=6 * 3600)


def test_spec_walltime_then_association_maxwall(user_sites: Path) -> None:
    lim = Limits("p", None, 10, 16, 64 * GiB, max_wall=1200)
    plan = sizing.plan(_profile(user_sites), _work(4), "auto", lim, walltime=1800)
    assert plan.walltime == 1200


def test_spec_walltime_on_a_local_site_is_said_not_to_apply() -> None:
    local = profiles.load("local").profile
    plan = sizing.plan(local, _work(4), "auto", None, walltime=1800)
    assert plan.walltime is None
    assert any("walltime" in d and "local" in d for d in plan.decisions), plan.decisions


def test_spec_walltime_reaches_the_worker_jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """prepare -> plan -> execute -> backends.start(plan with the walltime) -> sbatch --time."""
    import zarr

    from hpcscale import backends, run, slurm
    from hpcscale.config import jobspec

    monkeypatch.setattr(slurm, "available", lambda: False)
    zarr.create_array(tmp_path / "in.zarr", shape=(4, 4), chunks=(2, 4), dtype="f4")
    spec = jobspec.parse({"input": {"path": str(tmp_path / "in.zarr")},
                          "steps": [{"reduce": "mean", "axis": [0]}],
                          "output": {"path": str(tmp_path / "o.zarr")},
                          "run": {"walltime": "00:20:00"}}, "job.toml")
    assert spec.run.walltime_seconds == 1200
    prep = run.prepare(spec, "testbed")
    assert prep.plan.walltime == 1200
    assert "walltime        00:20:00" in prep.plan.lines()
    seen: dict[str, object] = {}

    class Started(Exception):
        pass

    def fake_start(profile: object, plan: sizing.Plan, **kw: object) -> object:
        seen["walltime"] = plan.walltime
        raise Started

    monkeypatch.setattr(backends, "start", fake_start)
    with pytest.raises(Started):
        run.execute(prep)
    assert seen["walltime"] == 1200
    assert prep.profile.slurm is not None
    kwargs = backends.slurm_job_kwargs(prep.profile.slurm, walltime=seen["walltime"])  # type: ignore[arg-type]
    assert kwargs["walltime"] == "00:20:00"
    script = backends.job_script(prep.profile, walltime=1200)
    assert "#SBATCH -t 00:20:00" in script


def test_sacctmgr_associations_give_the_tightest_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpcscale import slurm
    from hpcscale.slurm import resources

    canned = "physics|normal,high|||\nchem|normal|4|8|1:00:00\nbio|normal|2||2-00:00:00\nbad line\n"
    rows = slurm.parse_associations(canned)
    assert [r["Account"] for r in rows] == ["physics", "chem", "bio"]
    assert rows[0] == {"Account": "physics", "QOS": "normal,high", "MaxJobs": "",
                       "MaxSubmitJobs": "", "MaxWall": ""}
    monkeypatch.setattr(resources, "run", lambda cmd, **kw: canned)
    assert slurm.association() == {"MaxJobs": 2, "MaxSubmitJobs": 8, "MaxWall": 3600}


def test_local_default_is_one_worker_with_a_thread_per_core_but_a_process_per_core_for_gil_work(
    user_sites: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hpcscale.backends.local import cluster_kwargs

    monkeypatch.setattr("os.cpu_count", lambda: 4)
    local = profiles.load("local").profile
    plan = sizing.plan(local, _work(8), "auto", None)
    assert (plan.jobs, plan.threads_per_worker) == (1, 4)
    assert any("one process with a thread per core" in d for d in plan.decisions)
    kw = cluster_kwargs(local, plan)  # what backends.start makes of the plan
    assert (kw["n_workers"], kw["threads_per_worker"], kw["processes"]) == (1, 4, True)
    gil = dataclasses.replace(_work(8), holds_gil=True)
    plan = sizing.plan(local, gil, "auto", None)
    assert (plan.jobs, plan.threads_per_worker) == (4, 1)
    assert any("the work holds the GIL" in d for d in plan.decisions), plan.decisions
    asked = sizing.plan(local, _work(8), 2, None)
    assert (asked.jobs, asked.threads_per_worker) == (2, 2)
    write_profile(user_sites, "two", 'kind = "local"\n[local]\nworkers = 2\nthreads = 1\n')
    shaped = sizing.plan(profiles.load("two").profile, _work(8), "auto", None)
    assert (shaped.jobs, shaped.threads_per_worker) == (2, 1)


def test_only_the_histogram_holds_the_gil(tmp_path: Path) -> None:
    from hpcscale.ops import GaussianFilter, Histogram, Reduction

    assert Histogram.HOLDS_GIL
    assert not Reduction.HOLDS_GIL
    assert not GaussianFilter.HOLDS_GIL


def test_scontrol_oneliner_parses_to_one_record_a_line() -> None:
    from hpcscale.slurm import parse_oneliner

    canned = ("PartitionName=debug AllowGroups=ALL Default=YES MaxTime=00:30:00 Nodes=c[1-3]\n"
              "\nPartitionName=short MaxTime=00:01:00 Nodes=c1 State=UP\n")
    assert parse_oneliner(canned) == [
        {"PartitionName": "debug", "AllowGroups": "ALL", "Default": "YES",
         "MaxTime": "00:30:00", "Nodes": "c[1-3]"},
        {"PartitionName": "short", "MaxTime": "00:01:00", "Nodes": "c1", "State": "UP"},
    ]
