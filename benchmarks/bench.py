"""``benchmarks/run``: make the inputs, run every contestant on every case and
size side by side, print the ratios and the issue's targets, write JSON.

See docs/performance.md for what each contestant is and how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import compare, contestants, inputs, measure, report
from benchmarks.cases import CASES, Case, parse_cases

ORDER = ("numpy", "read-only", "threaded", "jobqueue", "hpcscale-testbed", "hpcscale-local",
         "script-local", "hpcscale-default")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    default_out = Path(os.environ.get("TMPDIR") or tempfile.gettempdir()) / "hpcscale-bench"
    p = argparse.ArgumentParser(
        prog="benchmarks/run",
        description="hpcscale against numpy/scipy, dask threaded, a hand-written "
                    "dask-jobqueue script and the read-only limit.")
    p.add_argument("--sizes", help="comma-separated input sizes, e.g. 256MiB,1GiB or "
                   f"16x2048x2048 (default {','.join(inputs.DEFAULT_SIZES)}; with --quick "
                   f"{','.join(inputs.QUICK_SIZES)})")
    p.add_argument("--quick", action="store_true", help="tiny inputs (a smoke test)")
    p.add_argument("--many-chunks", action="store_true",
                   help="instead: mean along z with 16k and 262k chunks against dask "
                        "threaded and a plain LocalCluster (see benchmarks/many.py; "
                        "--many-chunks --help for its options)")
    p.add_argument("--cases", help=f"comma-separated, of {', '.join(CASES)} (default all)")
    known = (*contestants.CONTESTANTS, *contestants.OPTIONAL)
    p.add_argument("--contestants", help=f"comma-separated, of {', '.join(known)} (default: "
                   f"{', '.join(contestants.CONTESTANTS)}; the SLURM ones are skipped, "
                   "loudly, when the testbed is not up)")
    p.add_argument("--out", type=Path, default=default_out,
                   help=f"inputs, outputs and results (default {default_out})")
    p.add_argument("--json", type=Path, help="results file (default OUT/results.json)")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds one contestant may take (default 1800)")
    p.add_argument("--slurm-start-trials", type=int, default=3,
                   help="trivial jobs timed for SLURM's own job start (default 3)")
    p.add_argument("--keep-outputs", action="store_true",
                   help="keep every contestant's output (default: removed once compared)")
    return p.parse_args(argv)


def _contestants(text: str | None, slurm_up: bool) -> list[str]:
    known = (*contestants.CONTESTANTS, *contestants.OPTIONAL)
    if text:
        chosen = [c.strip() for c in text.split(",") if c.strip()]
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise SystemExit(f"unknown contestant(s) {', '.join(unknown)}; "
                             f"known: {', '.join(known)}")
        if not slurm_up and any(c in contestants.SLURM_CONTESTANTS for c in chosen):
            raise SystemExit(f"the SLURM testbed is not up ({measure.testbed_problem()}); "
                             "leave out " + ", ".join(contestants.SLURM_CONTESTANTS))
    else:
        chosen = list(contestants.CONTESTANTS)
        if not slurm_up:
            _say(f"!!! SLURM testbed not up ({measure.testbed_problem()}): "
                 f"skipping {', '.join(contestants.SLURM_CONTESTANTS)}")
            chosen = [c for c in chosen if c not in contestants.SLURM_CONTESTANTS]
    return sorted(chosen, key=ORDER.index)


def main(argv: list[str] | None = None) -> None:
    given = sys.argv[1:] if argv is None else argv
    if "--many-chunks" in given:  # the many-chunk case: its own inputs and contestants
        from benchmarks import many

        rest = [a for a in given if a != "--many-chunks"]
        if "--out" not in rest:
            rest += ["--out", str(parse_args([]).out / "many-chunks")]
        many.main(rest)
        return
    args = parse_args(argv)
    sizes_text = args.sizes or ",".join(inputs.QUICK_SIZES if args.quick
                                        else inputs.DEFAULT_SIZES)
    try:
        sizes = [inputs.parse_size(s) for s in sizes_text.split(",") if s.strip()]
        cases = parse_cases(args.cases)
    except ValueError as err:
        raise SystemExit(f"benchmarks/run: {err}") from None
    wants_slurm = args.contestants is None or any(
        c.strip() in contestants.SLURM_CONTESTANTS for c in args.contestants.split(","))
    slurm_env = measure.slurm_env() if wants_slurm else None
    chosen = _contestants(args.contestants, slurm_env is not None)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    setup = contestants.Setup(out, slurm_env, args.timeout)
    setup.prepare()
    uses_slurm = any(c in contestants.SLURM_CONTESTANTS for c in chosen)
    result: dict[str, Any] = {
        "meta": measure.machine(slurm_env),
        "config": {"sizes": [s.label for s in sizes], "cases": [c.name for c in cases],
                   "contestants": chosen, "jobs": contestants.JOBS, "argv": sys.argv[1:],
                   "out": str(out)},
    }
    t_start = time.time()
    result["sizes"] = _inputs(sizes, out)
    if uses_slurm and slurm_env is not None:
        _say("timing SLURM's own job start ...")
        result["slurm_start"] = measure.slurm_start(slurm_env, out / "slurm-start",
                                                    trials=args.slurm_start_trials)
        _say(f"  median {result['slurm_start']['median_s']:.2f} s")
    try:
        records = _run_all(sizes, result["sizes"], cases, chosen, setup,
                           keep=args.keep_outputs)
    finally:
        setup.server.close()
    result["runs"] = records
    result["seconds"] = time.time() - t_start
    result["meta"]["load_average_end"] = os.getloadavg()
    runs = report.index(records)
    result["rows"] = report.rows(runs, sizes, cases)
    result["targets"] = report.targets(runs, sizes, cases, result.get("slurm_start"))
    json_path = args.json or out / "results.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(report.render(result))
    print(f"\nresults: {json_path} ({result['seconds']:.0f} s in all)")
    if any(not r["ok"] for r in records):
        sys.exit(1)


def _inputs(sizes: list[inputs.Size], out: Path) -> list[dict[str, Any]]:
    """Make (or reuse) every input; what the results say about each."""
    info = []
    for size in sizes:
        path, made = inputs.ensure_input(out / "data", size)
        _say(f"input {size.label}: {path} ({'made' if made else 'reused'}, "
             f"{size.shape} in chunks {size.chunks})")
        stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        info.append({"label": size.label, "shape": list(size.shape),
                     "chunks": list(size.chunks), "bytes": size.nbytes,
                     "stored_bytes": stored, "chunk_bytes": size.chunk_bytes,
                     "chunks_count": size.nchunks, "path": str(path)})
    return info


def _run_all(sizes: list[inputs.Size], size_info: list[dict[str, Any]], cases: list[Case],
             chosen: list[str], setup: contestants.Setup, *, keep: bool
             ) -> list[dict[str, Any]]:
    """Every contestant on every case, size by size; the contestants of a case one after
    the other, so they see the same machine."""
    records: list[dict[str, Any]] = []
    total, done = len(sizes) * len(cases) * len(chosen), 0
    for size, info in zip(sizes, size_info, strict=True):
        inp = Path(info["path"])
        inputs.warm(inp)
        for case in cases:
            batch = []
            for name in chosen:
                done += 1
                rec = contestants.run(name, case, size, inp, setup)
                batch.append(rec)
                _say(f"[{done}/{total}] {case.name}@{size.label} {name}: " + _brief(rec))
            _check(case, batch, keep=keep)
            records.extend(batch)
    return records


def _brief(rec: dict[str, Any]) -> str:
    if not rec["ok"]:
        return f"FAILED: {rec['error']}"
    text = f"{rec['wall_s']:.1f} s"
    if rec.get("compute_s") is not None:
        text += f" (compute {rec['compute_s']:.2f} s)"
    if rec.get("first_worker_s") is not None:
        text += f", first worker at {rec['first_worker_s']:.2f} s"
    return text


def _check(case: Case, batch: list[dict[str, Any]], *, keep: bool) -> None:
    """Compare every output with numpy's; a wrong output fails its run."""
    ref = next((r for r in batch if r["contestant"] == "numpy" and r["ok"]), None)
    for rec in batch:
        if rec.get("output") is None or rec["contestant"] == "numpy":
            rec["correct"] = True if rec["contestant"] == "numpy" and rec["ok"] else None
            continue
        if ref is None or not rec["ok"]:
            rec["correct"] = None
            continue
        try:
            verdict = compare.compare(Path(ref["output"]), Path(rec["output"]),
                                      exact=case.exact)
        except Exception as exc:  # an unreadable output is a wrong one
            verdict = {"correct": False, "max_abs_err": None,
                       "detail": f"{type(exc).__name__}: {exc}"}
        rec["correct"] = verdict["correct"]
        rec["max_abs_err"] = verdict["max_abs_err"]
        if not verdict["correct"]:
            rec["ok"] = False
            rec["error"] = f"wrong output ({verdict['detail']}, max abs error " \
                           f"{verdict['max_abs_err']})"
            _say(f"  {case.name} {rec['contestant']}: {rec['error']}")
    if not keep:
        for rec in batch:
            if rec.get("output"):
                shutil.rmtree(rec["output"], ignore_errors=True)
