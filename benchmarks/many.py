"""``benchmarks/run --many-chunks``: the driver's overhead with tens of thousands of chunks.

Mean along z of float32 Zarr inputs with many chunks (issue 14):

* ``unwritten-16k``: 128 x 16384 x 16384 in 8 x 512 x 512 chunks (16,384), never
  written: reading costs nothing, the times are overhead;
* ``unwritten-262k``: the same array in 8 x 128 x 128 chunks (262,144);
* ``real-16k``: 128 x 1024 x 1024 of real values in 8 x 32 x 32 chunks (16,384).

Contestants, one after the other in fresh processes: ``threaded`` (dask's
threaded scheduler, 2 threads), ``distributed`` (the same graph on
``LocalCluster(n_workers=2, threads_per_worker=1)``), ``hpcscale-local``
(``--site local``, its default) and ``hpcscale-2x1`` (a LocalCluster-shaped
site: 2 workers x 1 thread). ``graph`` measures the graphs without computing.
Compute times are each contestant's own: input opened (cluster up) to output written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import tomli_w

from benchmarks import inputs
from benchmarks.contestants import LOCAL_PROFILE, REPO, await_report

FULL = {
    "unwritten-16k": ((128, 16384, 16384), (8, 512, 512), False),
    "unwritten-262k": ((128, 16384, 16384), (8, 128, 128), False),
    "real-16k": ((128, 1024, 1024), (8, 32, 32), True),
}
QUICK = {  # the same three, 16x fewer chunks in the 262k-like case's place
    "unwritten-16k": ((16, 512, 512), (8, 64, 64), False),
    "unwritten-262k": ((16, 512, 512), (8, 16, 16), False),
    "real-16k": ((16, 128, 128), (8, 16, 16), True),
}
CONTESTANTS = ("threaded", "distributed", "hpcscale-local", "hpcscale-2x1", "graph")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="benchmarks/run --many-chunks",
                                description="mean along z with many chunks (issue 14)")
    p.add_argument("--quick", action="store_true", help="small inputs (a smoke test)")
    p.add_argument("--cases", help=f"comma-separated, of {', '.join(FULL)} (default all)")
    p.add_argument("--contestants",
                   help=f"comma-separated, of {', '.join(CONTESTANTS)} (default all)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--json", type=Path)
    p.add_argument("--timeout", type=float, default=1800.0)
    return p.parse_args(argv)


def make_input(directory: Path, name: str, shape: tuple[int, int, int],
               chunks: tuple[int, int, int], written: bool) -> Path:
    import zarr

    size = inputs.Size(name, shape, chunks)
    if written:
        return inputs.ensure_input(directory, size)[0]
    path = directory / f"unwritten-{size.name}-c{'x'.join(map(str, chunks))}.zarr"
    if not (path / "zarr.json").is_file():
        zarr.create_array(store=str(path), shape=shape, chunks=chunks, dtype=inputs.DTYPE,
                          dimension_names=inputs.DIMS, zarr_format=3, fill_value=0.0)
    return path


def _spec(work: Path, inp: Path, out: Path) -> Path:
    spec = work / "job.toml"
    spec.write_text(tomli_w.dumps({
        "input": {"path": str(inp)}, "steps": [{"reduce": "mean", "axis": ["z"]}],
        "output": {"path": str(out), "name": "result"}}))
    return spec


def run_one(contestant: str, inp: Path, work: Path, env: dict[str, str],
            timeout: float) -> dict[str, Any]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = work / "output.zarr"
    result = work / "result.json"
    rec: dict[str, Any] = {"contestant": contestant, "load_before": os.getloadavg()[0]}
    if contestant in ("threaded", "distributed", "graph"):
        kind = contestant
        cmd = [sys.executable, "-m", "benchmarks.many_script", "--kind", kind,
               "--input", str(inp), "--output", str(out), "--result", str(result),
               "--spec", str(_spec(work, inp, out))]
    else:
        site = "local" if contestant == "hpcscale-local" else "bench-local"
        cmd = [sys.executable, "-m", "benchmarks.hpcscale_peak", str(result), "--json",
               "submit", str(_spec(work, inp, out)), "--site", site]
        if contestant == "hpcscale-2x1":
            cmd += ["--jobs", "2"]
    t0 = time.time()
    with (work / "stdout.txt").open("wb") as so, (work / "stderr.txt").open("wb") as se:
        try:
            code = subprocess.run(cmd, stdout=so, stderr=se, env=env, cwd=work,
                                  timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -9
    rec["wall_s"] = time.time() - t0
    rec["load_after"] = os.getloadavg()[0]
    if code != 0:
        tail = (work / "stderr.txt").read_text(errors="replace").strip().splitlines()
        rec.update(ok=False, error=f"exit {code}: {tail[-1] if tail else ''}")
        return rec
    rec["ok"] = True
    rec.update(json.loads(result.read_text()))
    if contestant.startswith("hpcscale"):
        summary = json.loads((work / "stdout.txt").read_text())
        await_report(Path(summary["run_dir"]))
        rec["compute_s"] = summary["compute_s"]
        rec["blocks"] = summary["blocks"]
    shutil.rmtree(out, ignore_errors=True)
    return rec


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    table = QUICK if args.quick else FULL
    cases = [c.strip() for c in (args.cases or ",".join(table)).split(",") if c.strip()]
    chosen = [c.strip() for c in (args.contestants or ",".join(CONTESTANTS)).split(",")
              if c.strip()]
    bad = [c for c in cases if c not in table] + [c for c in chosen if c not in CONTESTANTS]
    if bad:
        raise SystemExit(f"benchmarks/run --many-chunks: unknown {', '.join(bad)}; cases: "
                         f"{', '.join(table)}; contestants: {', '.join(CONTESTANTS)}")
    out = args.out.resolve()
    sites = out / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    os.chmod(sites, 0o700)
    (sites / "bench-local.toml").write_text(LOCAL_PROFILE)
    env = {k: v for k, v in os.environ.items() if k != "HPCSCALE_SITE"}
    env.update(HPCSCALE_USER_SITES=str(sites), HPCSCALE_RUNS_DIR=str(out / "hpcscale-runs"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    results: dict[str, Any] = {"cpus": os.cpu_count(), "load_start": os.getloadavg(),
                               "quick": args.quick, "cases": {}}
    for case in cases:
        shape, chunks, written = table[case]
        inp = make_input(out / "data", case, shape, chunks, written)
        if written:
            inputs.warm(inp)
        nchunks = inputs.Size(case, shape, chunks).nchunks
        _say(f"{case}: {shape} in chunks {chunks} ({nchunks} chunks)")
        runs = {}
        for name in chosen:
            rec = run_one(name, inp, out / "work" / case / name, env, args.timeout)
            runs[name] = rec
            _say(f"  {name}: " + (f"compute {rec.get('compute_s', 0):.1f} s, wall "
                                  f"{rec['wall_s']:.1f} s, load {rec['load_before']:.1f}"
                                  if rec["ok"] else f"FAILED {rec['error']}"))
        results["cases"][case] = {"shape": shape, "chunks": chunks, "nchunks": nchunks,
                                  "written": written, "runs": runs}
    results["load_end"] = os.getloadavg()
    path = args.json or out / "many-chunks.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\nresults: {path}")
    if any(not r["ok"] for c in results["cases"].values() for r in c["runs"].values()):
        sys.exit(1)


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def render(results: dict[str, Any]) -> str:
    """Compute seconds per case and contestant, and the issue's ratios (the
    contestant's time over hpcscale's: above 1.0 means hpcscale is faster)."""
    lines = ["case | chunks | threaded | distributed | hpcscale-local | hpcscale-2x1 | "
             "local vs threaded | 2x1 vs distributed | hpcscale-local driver peak"]
    for case, c in results["cases"].items():
        r = c["runs"]

        def t(name: str, r: dict[str, Any] = r) -> float | None:
            rec = r.get(name) or {}
            value = rec.get("compute_s") if rec.get("ok") else None
            return float(value) if value is not None else None

        cells = [f"{t(n):.1f} s" if t(n) else "-" for n in CONTESTANTS[:4]]
        peak = (r.get("hpcscale-local") or {}).get("driver_peak")
        lines.append(f"{case} | {c['nchunks']} | " + " | ".join(cells) + " | "
                     f"{_ratio(t('threaded'), t('hpcscale-local'))} | "
                     f"{_ratio(t('distributed'), t('hpcscale-2x1'))} | "
                     + (f"{peak / 2**20:.0f} MiB" if peak else "-"))
        g = r.get("graph")
        if g and g.get("ok"):
            lines.append(f"  graph: hpcscale {g['hpcscale_tasks']} tasks for "
                         f"{g['hpcscale_blocks']} blocks, built in {g['hpcscale_build_s']:.1f} s, "
                         f"submitted in {g['submit_s']:.1f} s, scheduler + client "
                         f"+{g['scheduler_bytes'] / 2**20:.0f} MiB; plain graph "
                         f"{g['plain_tasks']} tasks")
    return "\n".join(lines)
