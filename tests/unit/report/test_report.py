"""The run report: report.html from a real local run, from broken run directories, the command.

One real run (``submit --site local``, which writes its report as it ends) is
shared by the module; everything else edits copies of its directory or writes
synthetic ones. The screenshot
docs/images/report-summary.png is made by the commands in docs/report.md; a
test regenerates the figure from this run and checks it has the committed size.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from PIL import Image

from helpers import CliResult, invoke_in_process
from hpcscale import report, sizing, units
from hpcscale.report import facts as report_facts
from hpcscale.report import figure as report_figure
from hpcscale.report import html as report_html
from hpcscale.report import record as report_record
from hpcscale.rundir import DASK_REPORT_AFTER, RunDir

Cli = Callable[..., CliResult]
SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "images" / "report-summary.png"
VOID = {"meta", "img", "br", "hr", "link", "input", "col", "wbr"}


# -- a real run, once ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    runs: Path
    run: Path  # its run directory
    summary: dict[str, Any]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    base = tmp_path_factory.mktemp("report-run")
    arr = zarr.create_array(base / "in.zarr", shape=(8, 6, 5), chunks=(2, 6, 5), dtype="float32")
    arr[...] = np.arange(240, dtype="float32").reshape(8, 6, 5)
    spec = base / "job.toml"
    spec.write_text(f'[input]\npath = "{base / "in.zarr"}"\n[[steps]]\nreduce = "mean"\n'
                    f'axis = [0]\n[output]\npath = "{base / "out.zarr"}"\n', encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HPCSCALE_RUNS_DIR", str(base / "runs"))
        mp.setenv("HPCSCALE_USER_SITES", str(base / "sites"))
        mp.delenv("HPCSCALE_SITE_PATH", raising=False)
        mp.delenv("HPCSCALE_SITE", raising=False)
        mp.setenv("HPCSCALE_REPORT_INLINE", "1")  # the report is read at once
        code, out, err = invoke_in_process("submit", str(spec), "--site", "local", "--jobs", "1")
    assert code == 0, (out, err)
    (run,) = (base / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    return Ran(base / "runs", run, summary)


@pytest.fixture
def copy(ran: Ran, tmp_path: Path) -> Path:
    """A copy of the real run's directory to edit."""
    target = tmp_path / ran.run.name
    shutil.copytree(ran.run, target)
    RunDir(target.name, target).report.unlink(missing_ok=True)
    return target


@pytest.fixture
def runs_of(ran: Ran, monkeypatch: pytest.MonkeyPatch) -> Ran:
    """The real run's runs directory as $HPCSCALE_RUNS_DIR, for the command."""
    monkeypatch.setenv("HPCSCALE_RUNS_DIR", str(ran.runs))
    return ran


# -- checking a page ------------------------------------------------------------------------------


class Page(HTMLParser):
    """Parses a report: balanced tags, and what a self-contained page must not have."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []  # outside <style>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack, f"</{tag}> closes nothing"
        opened = self.stack.pop()
        assert opened == tag, f"<{opened}> closed by </{tag}>"

    def handle_data(self, data: str) -> None:
        if self.stack[-1:] != ["style"]:
            self.text.append(data)


def parse(path: Path) -> Page:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    page = Page()
    page.feed(text)
    page.close()
    assert page.stack == [], f"unclosed tags: {page.stack}"
    tags = [t for t, _ in page.tags]
    assert "script" not in tags, "the report runs no scripts"
    assert "link" not in tags
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert "://" not in value, f"<{tag} {key}={value!r}>: the report loads nothing"
    return page


def images(page: Page) -> list[Image.Image]:
    found = []
    for tag, attrs in page.tags:
        if tag == "img":
            src = attrs["src"] or ""
            assert src.startswith("data:image/png;base64,")
            img = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
            img.load()
            found.append(img)
    return found


def words(page: Page) -> str:
    """The page's text, each element's apart, whitespace made single spaces."""
    return " ".join(" ".join(page.text).split())


# -- the report of a real run ---------------------------------------------------------------------


def test_every_run_writes_its_report(ran: Ran) -> None:
    path = ran.run / "report.html"
    assert path.is_file(), "run.execute writes the report as the run ends"
    assert path.stat().st_mtime >= (ran.run / "summary.json").stat().st_mtime
    page = parse(path)
    text = words(page)
    s = ran.summary
    assert f"hpcscale run {ran.run.name}" in text
    for line in (ran.run / "plan.txt").read_text(encoding="utf-8").splitlines():
        assert " ".join(line.split()) in text, line
    assert f"{units.format_bytes(s['bytes_in'])} / {units.format_bytes(s['bytes_out'])}" in text
    assert f"{s['workers']} at the end" in text
    assert f"{s['blocks']} written, 0 resumed" in text
    assert f"{s['compute_s']:.1f} s" in text
    if s["startup_s"]:  # 0 when another run came first in this process
        assert f"startup - {s['startup_s']:.1f} s from the command's start to the run's" in text
        assert (f"first worker - {s['first_worker_s']:.1f} s after the run started "
                f"({s['startup_s'] + s['first_worker_s']:.1f} s after the command started)"
                in text)
    else:
        assert f"startup - - first worker - {s['first_worker_s']:.1f} s after the run " \
               "started output blocks" in text
    rate = units.format_bytes(int(s["bytes_in"] / s["compute_s"]))
    assert f"throughput in / out - {rate}/s" in text
    assert s["peak_memory"]
    for worker, peak in s["peak_memory"].items():
        host = next(w["host"] for w in _last_sample(ran.run)["workers"].values())
        assert f"{worker} {host} " in text, "the peak is on the timeline's row of its worker"
        assert units.format_bytes(peak) in text
    assert "state done" in text
    assert "not in the run directory" not in text
    (figure,) = images(page)
    assert figure.size == (1000, 800)
    links = {a.get("href") for t, a in page.tags if t == "a"}
    assert {"plan.txt", "plan.json", "summary.json", "timeline.jsonl"} <= links
    # dask's own report: written for longer computations than this one (see compute.py)
    dask_report = (ran.run / "dask-report.html").is_file()
    assert ("dask-report.html" in links) == dask_report
    assert dask_report or (f"dask wrote no performance report: it is written for "
                           f"computations of {DASK_REPORT_AFTER:.0f} s or more, and this one "
                           f"took {s['compute_s']:.1f} s.") in text


def test_write_report_is_fast(ran: Ran, copy: Path) -> None:
    started = time.monotonic()
    path = report.write_report(copy)
    took = time.monotonic() - started
    assert path == copy / "report.html"
    assert path.read_text(encoding="utf-8").count("<h2>") == 6
    assert took < 2, f"write_report took {took:.1f} s"


def test_reading_a_report_imports_no_matplotlib() -> None:
    code = ("import sys, hpcscale.report, hpcscale.cli; "
            "sys.exit('matplotlib' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _last_sample(run: Path) -> dict[str, Any]:
    line = (run / "timeline.jsonl").read_text(encoding="utf-8").splitlines()[-1]
    return json.loads(line)  # type: ignore[no-any-return]


# -- runs that went wrong -------------------------------------------------------------------------


def test_a_run_with_only_its_state_still_gets_a_report(tmp_path: Path) -> None:
    run = tmp_path / "20261122-101500-ab12cd"
    run.mkdir()
    (run / "state.json").write_text(json.dumps({
        "run_id": run.name, "state": "failed", "site": "testbed", "created": time.time(),
        "error": "no worker connected within 180 s: job 12 PENDING (Resources)"}))
    page = parse(report.write_report(run))
    text = words(page)
    assert "state failed" in text
    assert "error: no worker connected within 180 s: job 12 PENDING (Resources)" in text
    assert ("not in the run directory: summary.json, plan.txt, jobspec.toml, timeline.jsonl"
            in text)
    assert "dask wrote no performance report" in text
    assert len(images(page)) == 1  # the figure says there is no timeline


def test_broken_files_are_named_not_fatal(copy: Path) -> None:
    (copy / "summary.json").write_text("{not json", encoding="utf-8")
    with (copy / "timeline.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"t": 17953216')  # a driver killed mid-line
    (copy / "plan.txt").unlink()
    page = parse(report.write_report(copy))
    text = words(page)
    assert "summary.json: not JSON" in text
    assert "timeline.jsonl: 1 unreadable line(s) skipped" in text
    assert "not in the run directory: plan.txt" in text
    assert len(images(page)) == 1


def test_write_report_never_raises(tmp_path: Path, copy: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tmp_path / "no-such-run"
    assert report.write_report(gone) == gone / "report.html"
    assert not gone.exists()

    def broken(rec: report.RunRecord) -> list[tuple[str, str, str]]:
        raise KeyError("surprise")

    monkeypatch.setattr(report_html, "facts", broken)  # the page's own name for it
    text = words(parse(report.write_report(copy)))
    assert "this part could not be built: KeyError: 'surprise'" in text
    assert "Memory per worker" in text  # the other sections are there


def test_values_from_files_are_escaped(copy: Path) -> None:
    evil = '<script>alert("x")</script>'
    state = json.loads((copy / "state.json").read_text(encoding="utf-8"))
    state.update(output=f"/data/{evil}.zarr", error=f'"><img src=x onerror=alert(1)>{evil}')
    (copy / "state.json").write_text(json.dumps(state), encoding="utf-8")
    with (copy / "plan.txt").open("a", encoding="utf-8") as f:
        f.write(f"decision        {evil}\n")
    line = json.loads((copy / "timeline.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    line["workers"] = {evil: {"memory": 1, "memory_limit": 2, "host": evil},
                       "$x_{$": {"memory": 1, "memory_limit": 2}}  # not mathtext either
    with (copy / "timeline.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    path = report.write_report(copy)
    raw = path.read_text(encoding="utf-8")
    assert "<script>" not in raw
    assert "<img src=x" not in raw
    assert "&lt;script&gt;" in raw
    page = parse(path)  # no script tag, one img: the figure
    assert [t for t, _ in page.tags].count("img") == 1
    assert f"/data/{evil}.zarr" in words(page)
    assert "could not be built" not in words(page)


# -- what the timeline says -----------------------------------------------------------------------


def _timeline(run: Path, lines: list[dict[str, Any]]) -> None:
    run.mkdir(exist_ok=True)
    (run / "timeline.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_queue_wait_per_job(tmp_path: Path) -> None:
    run = tmp_path / "20261122-101500-ab12cd"
    t0 = 1_800_000_000.0
    worker = {"memory": 2**28, "memory_limit": 2**30, "executing": 1, "host": "10.0.0.1"}
    _timeline(run, [
        {"t": t0 + 1, "phase": "waiting", "workers": {}, "jobs": {"7": "PENDING", "8": "PENDING"}},
        {"t": t0 + 4, "phase": "waiting", "workers": {}, "jobs": {"7": "RUNNING", "8": "PENDING"}},
        {"t": t0 + 9, "phase": "waiting", "workers": {"w-0": worker},
         "jobs": {"7": "RUNNING", "8": "RUNNING"}},
        {"t": t0 + 10, "phase": "computing", "workers": {"w-0": worker}, "jobs": {},
         "blocks": 3, "total": 4},
    ])
    (run / "state.json").write_text(json.dumps({"state": "running", "created": t0,
                                                "site": "mysite"}))
    (run / "summary.json").write_text(json.dumps({"lost_jobs": ["8"], "jobs": ["7", "8"]}))
    (run / "plan.txt").write_text("jobs            2 x 1 worker(s) x 4 thread(s), "
                                  "4GiB per worker\n")
    times = report_facts.job_times(report.load(run).samples)
    assert times["7"] == report_facts.JobTimes(1.0, 4.0, "RUNNING")
    assert times["8"].waited == 8.0
    text = words(parse(report.write_report(run)))
    assert "SLURM jobs 2 2 submitted, 2 seen running" in text
    assert "wait in queue - 3.0 s to 8.0 s (median 5.5 s) over 2 job(s)" in text
    assert "lost / retired jobs 0 / 0 1 / 0; lost: 8" in text
    assert "8 1.0 9.0 8.0 s RUNNING lost" in text
    assert "output blocks - 3 of 4 written" in text


def test_many_workers_are_a_band_and_a_long_timeline_is_thinned(tmp_path: Path) -> None:
    run = tmp_path / "20261122-101500-ab12cd"
    t0 = 1_800_000_000.0
    workers = {f"w-{i}": {"memory": 2**20 * (i + 1), "memory_limit": 2**30, "host": f"n{i}"}
               for i in range(report_figure.MAX_LINES + 4)}
    _timeline(run, [{"t": t0 + i, "phase": "computing", "workers": workers, "blocks": i,
                     "total": 4000} for i in range(4000)])
    fig = report.report_figure(run)
    labels = [t.get_text() for ax in fig.axes if (legend := ax.get_legend())
              for t in legend.get_texts()]
    assert f"min to max of {report_figure.MAX_LINES + 4} workers" in labels
    assert len(fig.axes[0].lines[-1].get_xdata()) <= report_figure.MAX_POINTS + 1
    assert len(fig.axes[0].patches) == 1  # one computing stretch, not one per sample


# -- the plan and the workers -------------------------------------------------------------------


def _slurm_plan() -> sizing.Plan:
    return sizing.Plan("mysite", "slurm", 3, 2, 4, 4 * 2**30, 5400,
                       sizing.Workload(chunks=48, chunk_bytes=2**24, bytes_in=3 * 2**30,
                                       bytes_out=2**29, output_chunks=12), ("as asked",))


def test_plan_json_and_plan_txt_say_the_same(ran: Ran, tmp_path: Path) -> None:
    plan = _slurm_plan()
    run = tmp_path / "20261122-101500-ab12cd"
    run.mkdir()
    (run / "plan.txt").write_text("\n".join(plan.lines()) + "\n", encoding="utf-8")
    from_text = report.load(run).plan
    (run / "plan.json").write_text(json.dumps(dataclasses.asdict(plan)), encoding="utf-8")
    from_json = report.load(run).plan
    assert from_json == from_text == report.Planned(
        kind="slurm", jobs=3, workers=6, threads=4, memory="4GiB", walltime=5400,
        bytes_in="3GiB", bytes_out="512MiB", output_chunks=12, cores=8)
    real = report.load(ran.run)
    assert real.plan.kind == "local"
    assert real.plan == report_record.plan_from_text(real.plan_text)


def test_the_plan_comes_from_plan_json(copy: Path) -> None:
    plan = json.loads((copy / "plan.json").read_text(encoding="utf-8"))
    (copy / "plan.txt").write_text("an older format\n", encoding="utf-8")
    text = words(parse(report.write_report(copy)))
    assert f"workers {plan['jobs'] * plan['workers_per_job']} x " \
           f"{plan['threads_per_worker']} thread(s)" in text
    assert f"output blocks {plan['workload']['output_chunks']} chunks" in text
    (copy / "plan.json").write_text("[1, 2]", encoding="utf-8")
    text = words(parse(report.write_report(copy)))
    assert "plan.json: not a JSON object" in text
    assert "workers - x - thread(s)" in text


def test_slurm_plan_and_walltime_share(tmp_path: Path) -> None:
    run = tmp_path / "20261122-101500-ab12cd"
    run.mkdir()
    (run / "plan.json").write_text(json.dumps(dataclasses.asdict(_slurm_plan())))
    (run / "summary.json").write_text(json.dumps({"seconds": 540.0, "startup_s": 2.3,
                                                  "first_worker_s": 31.0}))
    text = words(parse(report.write_report(run)))
    assert "SLURM jobs 3 0 submitted, 0 seen running" in text
    assert "memory per worker 4GiB" in text
    assert "run time (walltime) 01:30:00 540.0 s (10% of the walltime)" in text
    assert "bytes in / out (uncompressed) 3GiB / 512MiB" in text
    assert "startup - 2.3 s from the command's start" in text
    assert "first worker - 31.0 s after the run started (33.3 s after the command started)" \
        in text


def test_predicted_beside_actual_time_and_cpu_hours(tmp_path: Path) -> None:
    from hpcscale import predict

    evidence = predict.Evidence(predict.Throughput(2**20, 2**19, 2**21, 2, "history of 2 runs"),
                                predict.Startup(20.0, 10.0, 30.0, 2))
    plan = _slurm_plan()
    forecast = predict.forecast(evidence, tasks=48, bytes_in=480 * 2**20, bytes_out=2**29,
                                jobs=3, threads_per_job=8, cores_per_job=8, walltime=5400)
    plan = dataclasses.replace(plan, forecast=forecast)  # 2 rounds of 10 s
    run = tmp_path / "20261122-101500-ab12cd"
    run.mkdir()
    (run / "plan.json").write_text(json.dumps(dataclasses.asdict(plan)))
    (run / "summary.json").write_text(json.dumps({
        "seconds": 60.0, "first_worker_s": 30.0, "compute_s": 25.0, "startup_s": 1.0,
        "jobs": ["11", "12", "13"]}))
    text = words(parse(report.write_report(run)))
    assert "compute time 20.0 s (10.0 to 40.0 s), from the history of 2 runs 25.0 s " \
           "(1.25 x the prediction)" in text
    assert "CPU-hours 36.000 requested, about 0.133 predicted for the compute about 0.200 " \
           "(3 job(s) x 8 core(s) x 30 s); 0.167 for the compute" in text
    # a plan without a prediction says nothing it does not know
    (run / "plan.json").write_text(json.dumps(dataclasses.asdict(_slurm_plan())))
    text = words(parse(report.write_report(run)))
    assert "compute time - 25.0 s" in text


def test_an_older_runs_first_worker_counts_from_the_command(tmp_path: Path) -> None:
    run = tmp_path / "20261122-101500-ab12cd"
    t0 = 1_800_000_000.0
    worker = {"memory": 2**28, "memory_limit": 2**30, "host": "10.0.0.1"}
    _timeline(run, [{"t": t0 + 4, "phase": "waiting", "workers": {"w-0": worker}}])
    (run / "state.json").write_text(json.dumps({"state": "done", "created": t0}))
    (run / "summary.json").write_text(json.dumps({"first_worker_s": 6.5}))
    text = words(parse(report.write_report(run)))
    assert "first worker - 4.0 s after the run started; 6.5 s after the command started" in text
    assert "startup" not in text


def test_peak_memory_is_matched_to_its_worker(tmp_path: Path) -> None:
    run = tmp_path / "20261122-101500-ab12cd"
    t0 = 1_800_000_000.0

    def worker(port: int, *, address: bool = True) -> dict[str, Any]:
        return {"memory": 2**28, "memory_limit": 2**30, "host": "10.0.0.1",
                **({"address": f"tcp://10.0.0.1:{port}"} if address else {})}

    # two workers on one host: by name, and by the address the timeline recorded
    _timeline(run, [{"t": t0 + 1, "phase": "computing",
                     "workers": {"w-0": worker(4000), "w-1": worker(4001)}}])
    (run / "summary.json").write_text(json.dumps({"peak_memory": {
        "w-0": 3 * 2**28, "tcp://10.0.0.1:4001": 2**29}}))
    text = words(parse(report.write_report(run)))
    assert "w-0 10.0.0.1 256MiB 768MiB 1GiB 75%" in text
    assert "w-1 10.0.0.1 256MiB 512MiB 1GiB 50%" in text
    assert "tcp://" not in text
    # an older run: no addresses in the timeline; the one worker on the host is it
    _timeline(run, [{"t": t0 + 1, "phase": "computing",
                     "workers": {"w-0": worker(4000, address=False)}}])
    (run / "summary.json").write_text(json.dumps({"peak_memory": {
        "tcp://10.0.0.1:4000": 2**29}}))
    text = words(parse(report.write_report(run)))
    assert "w-0 10.0.0.1 256MiB 512MiB 1GiB 50%" in text
    assert "tcp://" not in text


# -- the command ----------------------------------------------------------------------------------


def test_command_prints_the_path_and_builds_when_stale(runs_of: Ran, cli: Cli) -> None:
    path = runs_of.run / "report.html"
    made = path.stat().st_mtime_ns
    r = cli("report", "last")
    assert r.code == 0, r
    assert r.out.strip() == str(path)
    assert path.stat().st_mtime_ns == made, "the run's own report is up to date"
    r = cli("--json", "report", runs_of.run.name[:15])
    assert r.code == 0, r
    assert json.loads(r.out) == {"run": runs_of.run.name, "report": str(path)}
    assert path.stat().st_mtime_ns == made, "an up-to-date report is not rewritten"
    earlier = (runs_of.run / "state.json").stat().st_mtime - 60
    os.utime(path, (earlier, earlier))  # older than the run's files now
    assert cli("report", runs_of.run.name).code == 0
    assert path.stat().st_mtime > earlier + 30


@pytest.mark.parametrize("run", ["nope", "last", "2026"])
def test_command_bad_run_is_one_line_exit_2(run: str, cli: Cli) -> None:
    runs = Path(os.environ["HPCSCALE_RUNS_DIR"])
    if run == "2026":  # two runs match the prefix
        for name in ("20261122-101500-ab12cd", "20261122-111500-ab12ce"):
            (runs / name).mkdir(parents=True)
            (runs / name / "state.json").write_text("{}")
    r = cli("report", run)
    assert r.code == 2, r
    assert r.out == ""
    assert len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err
    assert f"RUN {run!r}" in r.err


def test_command_png_has_the_screenshots_size_and_refuses_to_overwrite(
    runs_of: Ran, cli: Cli, tmp_path: Path
) -> None:
    target = tmp_path / "summary.png"
    r = cli("report", "last", "--png", str(target))
    assert r.code == 0, r
    assert SCREENSHOT.is_file(), "make it with the commands in docs/report.md"
    with Image.open(target) as new, Image.open(SCREENSHOT) as committed:
        assert new.format == "PNG"
        assert new.size == committed.size == (1000, 800), (
            f"the report figure is {new.size} but {SCREENSHOT} is {committed.size}: "
            "make the screenshot again with the commands in docs/report.md")
    made = target.read_bytes()
    r = cli("report", "last", "--png", str(target))
    assert r.code == 2, r
    assert "exists; pass --overwrite" in r.err
    assert target.read_bytes() == made
    assert cli("report", "last", "--png", str(target), "--overwrite").code == 0
    r = cli("report", "last", "--png", str(tmp_path / "no-dir" / "x.png"))
    assert r.code == 2, r
    assert "does not exist" in r.err


def test_command_open(runs_of: Ran, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    r = cli("report", "last", "--open")
    assert r.code == 0, r
    assert opened == []
    assert "no display here" in r.err
    assert re.search(r"scp \S+:\S+report\.html \.", r.err)
    assert r.out.strip().endswith("report.html")
    monkeypatch.setenv("DISPLAY", ":0")
    assert cli("report", "last", "--open").code == 0
    assert opened == [(runs_of.run / "report.html").as_uri()]


def test_the_report_imports_nothing_above_it() -> None:
    """The report reads run directories; it imports neither the run nor the command line."""
    above = ("hpcscale.run", "hpcscale.run.history", "hpcscale.run.compute", "hpcscale.cli")
    code = f"import sys, hpcscale.report; sys.exit([m for m in {above} if m in sys.modules] or 0)"
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert r.returncode == 0, f"importing hpcscale.report loads {r.stderr.strip()}"
