"""Ratios, the issue's targets and the printed tables, from the runs' records.

Two clocks, stated everywhere they are used:

* **end-to-end** (``wall_s``): launch of the contestant's process to its exit,
  imports, cluster start, waiting for jobs, compute, write and teardown
  included. Cluster against cluster (hpcscale against the hand-written script)
  is compared on this clock.
* **compute** (``compute_s``): for a cluster, all workers connected to the
  output written; for numpy, threaded and read-only, opening the input to
  the output written. hpcscale against the single-machine baselines (dask
  threaded, the read-only limit) and the growth with size use this clock;
  the end-to-end figure is shown next to it.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable
from typing import Any

from benchmarks.cases import Case
from benchmarks.inputs import Size

SUBJECT = "hpcscale-testbed"
Runs = dict[tuple[str, str, str], dict[str, Any]]  # (size, case, contestant) -> record


def index(runs: Iterable[dict[str, Any]]) -> Runs:
    return {(r["size"], r["case"], r["contestant"]): r for r in runs}


def _t(rec: dict[str, Any] | None, key: str) -> float | None:
    if not rec or not rec.get("ok"):
        return None
    value = rec.get(key)
    return float(value) if isinstance(value, int | float) else None


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den <= 0:
        return None
    return num / den


def peak(rec: dict[str, Any] | None) -> float | None:
    """The largest peak resident memory of any worker (bytes)."""
    mem = (rec or {}).get("peak_memory") or {}
    values = [v for v in mem.values() if isinstance(v, int | float)]
    return float(max(values)) if values else None


def above_idle(rec: dict[str, Any] | None) -> float | None:
    """The largest (peak - memory when all workers had connected) of any worker (bytes).

    Workers are matched by host where the names differ (hpcscale's peaks are by
    address, its idle memory by worker name); with several workers on a host the
    larger idle memory is used.
    """
    rec = rec or {}
    peaks, bases = rec.get("peak_memory") or {}, rec.get("base_memory") or {}
    if not peaks or not bases:
        return None
    worst = None
    for key, p in peaks.items():
        if key in bases:
            b = bases[key]
        else:
            host = _host(key)
            same = [v for k, v in bases.items() if _host(k) == host]
            b = max(same) if same else max(bases.values())
        worst = max(worst or 0.0, float(p) - float(b))
    return worst


def _idle(rec: dict[str, Any]) -> float | None:
    values = [v for v in (rec.get("base_memory") or {}).values() if isinstance(v, int | float)]
    return float(max(values)) if values else None


def _host(key: str) -> str:
    text = key.split("://", 1)[-1]
    return text.split("/", 1)[0].rsplit(":", 1)[0]


def rows(runs: Runs, sizes: list[Size], cases: list[Case]) -> list[dict[str, Any]]:
    """One row per (case, size): the seconds of every contestant and the ratios."""
    out = []
    for case in cases:
        for size in sizes:
            def rec(c: str, s: Size = size, k: Case = case) -> dict[str, Any] | None:
                return runs.get((s.label, k.name, c))
            tb, loc = rec("hpcscale-testbed"), rec("hpcscale-local")
            row: dict[str, Any] = {"case": case.name, "kind": case.kind, "size": size.label,
                                   "bytes": size.nbytes}
            for c in ("numpy", "threaded", "read-only"):
                row[f"{c}_s"] = _t(rec(c), "compute_s")
            for c in ("jobqueue", "script-local", "hpcscale-testbed", "hpcscale-local",
                      "hpcscale-default"):
                row[f"{c}_wall_s"] = _t(rec(c), "wall_s")
                row[f"{c}_compute_s"] = _t(rec(c), "compute_s")
            for name, subject, script in (("testbed", tb, rec("jobqueue")),
                                          ("local", loc, rec("script-local"))):
                wall, comp = _t(subject, "wall_s"), _t(subject, "compute_s")
                row[f"{name}_vs_script"] = _ratio(_t(script, "wall_s"), wall)
                row[f"{name}_vs_script_compute"] = _ratio(_t(script, "compute_s"), comp)
                for base in ("read-only", "threaded", "numpy"):
                    b = _t(rec(base), "compute_s")
                    row[f"{name}_vs_{base}"] = _ratio(b, comp)
                    row[f"{name}_vs_{base}_e2e"] = _ratio(b, wall)
            row["default_vs_threaded"] = _ratio(_t(rec("threaded"), "compute_s"),
                                                _t(rec("hpcscale-default"), "compute_s"))
            row["default_vs_local"] = _ratio(_t(loc, "compute_s"),
                                             _t(rec("hpcscale-default"), "compute_s"))
            row["correct"] = {c: r.get("correct") for (s, k, c), r in runs.items()
                              if s == size.label and k == case.name}
            out.append(row)
    return out


def _item(label: str, value: float | None, ok: bool | None, fmt: str) -> dict[str, Any]:
    return {"at": label, "value": value, "pass": ok,
            "text": f"{label}: {'n/a' if value is None else format(value, fmt)}"}


def targets(runs: Runs, sizes: list[Size], cases: list[Case],
            slurm_start: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The issue's targets for hpcscale on the testbed, each PASS, MISS or n/a."""
    def rec(size: Size, case: Case, c: str = SUBJECT) -> dict[str, Any] | None:
        r = runs.get((size.label, case.name, c))
        return r if r and r.get("ok") else None  # failed or wrong: n/a

    found: list[dict[str, Any]] = []

    def add(name: str, rule: str, items: list[dict[str, Any]]) -> None:
        judged = [i for i in items if i["pass"] is not None]
        status = "n/a" if not judged else ("PASS" if all(i["pass"] for i in judged) else "MISS")
        found.append({"target": name, "rule": rule, "status": status, "items": items})

    def ratio_items(kind: str, other: str, key_other: str, key_self: str,
                    limit: float) -> list[dict[str, Any]]:
        items = []
        for case in (c for c in cases if c.kind == kind):
            for size in sizes:
                r = _ratio(_t(rec(size, case, other), key_other), _t(rec(size, case), key_self))
                items.append(_item(f"{case.name}@{size.label}", r,
                                   None if r is None else r >= limit, ".2f"))
        return items

    add("reductions vs jobqueue", "hpcscale-testbed >= 2x faster than the hand-written "
        "jobqueue script, end-to-end (script wall / hpcscale wall >= 2.0)",
        ratio_items("reduction", "jobqueue", "wall_s", "wall_s", 2.0))
    add("reductions vs jobqueue (compute)", "the same, compute phase: the throughput the "
        "issue's figures compare (script compute / hpcscale compute >= 2.0)",
        ratio_items("reduction", "jobqueue", "compute_s", "compute_s", 2.0))
    add("reductions vs read-only", "hpcscale-testbed >= 0.8x the read-only limit, compute "
        "phase (read-only seconds / hpcscale compute seconds >= 0.8)",
        ratio_items("reduction", "read-only", "compute_s", "compute_s", 0.8))
    add("filters vs jobqueue", "hpcscale-testbed >= 1.5x faster than the jobqueue script, "
        "end-to-end (>= 1.5)", ratio_items("filter", "jobqueue", "wall_s", "wall_s", 1.5))
    add("filters vs jobqueue (compute)", "the same, compute phase (script compute / "
        "hpcscale compute >= 1.5)",
        ratio_items("filter", "jobqueue", "compute_s", "compute_s", 1.5))
    add("filters vs threaded", "hpcscale-testbed >= 0.9x dask threaded on the same cores, "
        "compute phase (threaded seconds / hpcscale compute seconds >= 0.9)",
        ratio_items("filter", "threaded", "compute_s", "compute_s", 0.9))

    items = []
    for case in (c for c in cases if c.writes_stack):
        for size in sizes:
            r = rec(size, case)
            extra, threads = above_idle(r), (r or {}).get("threads_per_worker") or 1
            mult = None if extra is None else extra / (size.chunk_bytes * threads)
            items.append(_item(f"{case.name}@{size.label}", mult,
                               None if mult is None else mult <= 15.0, ".1f"))
    add("filter memory", "filter-to-Zarr: peak worker memory above idle (libraries loaded, "
        "no data; estimated where the table marks it ~) <= 15 x chunk bytes per thread "
        "(value: the multiple)", items)

    items = []
    pairs = list(itertools.pairwise(sizes))
    for case in (c for c in cases if c.kind == "reduction"):
        for small, large in pairs:
            grew = _ratio(peak(rec(large, case)), peak(rec(small, case)))
            items.append(_item(f"{case.name} {small.label}->{large.label}", grew,
                               None if grew is None else grew <= 1.10, ".3f"))
    add("reduction memory", "reductions: peak worker memory at the larger input <= 1.10 x "
        "at the smaller (the issue says for 2x the input; with 4x between the sizes this is "
        "stricter)", items)

    items = []
    for case in cases:
        for small, large in pairs:
            growth = large.nbytes / small.nbytes
            took = _ratio(_t(rec(large, case), "compute_s"), _t(rec(small, case), "compute_s"))
            items.append(_item(f"{case.name} {small.label}->{large.label} (x{growth:g})", took,
                               None if took is None else took <= 1.1 * growth, ".2f"))
    add("linear cost", "compute seconds at the larger input <= 1.1 x the size ratio x the "
        "seconds at the smaller (4x the input: at most 4.4x the time)", items)

    starts = [s for (_, _, c), r in runs.items() if c == SUBJECT
              if (s := _t(r, "submit_to_first_worker_s")) is not None]
    own = (slurm_start or {}).get("median_s")
    items = []
    if starts and own is not None:
        med = statistics.median(starts)
        items.append(_item(f"median of {len(starts)} runs - SLURM's own start "
                           f"{own:.2f} s", med - own, med - own <= 2.0, ".2f"))
        items.append(_item("worst run - SLURM's own start", max(starts) - own, None, ".2f"))
    add("time to first worker", "hpcscale-testbed: from the first sbatch to the first worker "
        "connected <= SLURM's own job start + 2 s (value: the excess in seconds)", items)
    return found


# -- text ----------------------------------------------------------------------------------------


def _f(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else format(value, fmt)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h)
              for i, h in enumerate(header)]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)) + " |"
    return [line(header), "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|",
            *(line(r) for r in body)]


def render(result: dict[str, Any]) -> str:
    """The tables and target lines ``benchmarks/run`` prints."""
    meta = result["meta"]
    lines = [
        f"hpcscale benchmark, {meta['date']}, {meta['cpu']}, {meta['cores']} cores, "
        f"{meta['memory_bytes'] / 2**30:.0f} GiB; load average at start "
        f"{meta['load_average'][0]:.2f}",
        "seconds: numpy/threaded/read-only = open input to output written; "
        "clusters = end-to-end (compute phase in brackets)",
        "ratios > 1: hpcscale faster. tb = hpcscale-testbed; vs jq: end-to-end; "
        "vs ro, vs thr: compute phase (end-to-end in brackets)",
        "",
        *_main_table(result["rows"]),
        "",
        "startup and memory, per run: seconds from launch (1st worker: from the worker logs; "
        "own: what the contestant reports, * where it is all there is); MiB per worker: peak, "
        "idle (libraries loaded, no data; ~ estimated), above = peak - idle; "
        "x chunk = above / (chunk bytes x threads per worker)",
        *_startup_table(result),
    ]
    for row in result["rows"]:
        if row.get("hpcscale-default_compute_s") is not None:
            lines.append(f"hpcscale-default (--site local as it comes) {row['case']}@"
                         f"{row['size']}: compute {row['hpcscale-default_compute_s']:.2f} s; "
                         f"threaded / default {_f(row['default_vs_threaded'])}, "
                         f"hpcscale-local (2 processes) / default {_f(row['default_vs_local'])}")
    for s in result["sizes"]:
        ro = [r.get("gbps") for r in result["runs"]
              if r["contestant"] == "read-only" and r["size"] == s["label"] and r.get("ok")]
        if ro:
            lines.append(f"read-only limit at {s['label']}: median "
                         f"{statistics.median(ro):.2f} GB/s over {len(ro)} runs "
                         f"({s['stored_bytes'] / s['bytes']:.0%} of the bytes stored)")
    start = result.get("slurm_start")
    if start:
        lines.append(f"SLURM's own job start (sbatch call to a trivial job's first action): "
                     f"median {start['median_s']:.2f} s of "
                     f"{', '.join(f'{s:.2f}' for s in start['samples_s'])}")
    notes = _notes(result["runs"])
    if notes:
        lines += ["", "notes:", *notes]
    lines += ["", "targets (hpcscale-testbed):"]
    for t in result["targets"]:
        lines.append(f"  {t['status']:4}  {t['target']}: {t['rule']}")
        for i in t["items"]:
            mark = {True: "ok", False: "MISS", None: ""}[i["pass"]]
            lines.append(f"          {i['text']} {mark}".rstrip())
    return "\n".join(lines)


def _main_table(rows: list[dict[str, Any]]) -> list[str]:
    header = ["case", "size", "numpy", "threaded", "read-only", "jobqueue", "hpcs-testbed",
              "hpcs-local", "tb vs jq", "tb vs ro", "tb vs thr", "correct"]
    body = []
    for row in rows:
        def both(c: str, r: dict[str, Any] = row) -> str:
            wall, comp = r.get(f"{c}_wall_s"), r.get(f"{c}_compute_s")
            return "-" if wall is None else f"{wall:.1f} ({_f(comp, '.1f')})"

        def pair(key: str, r: dict[str, Any] = row) -> str:
            if r.get(key) is None:
                return "-"
            return f"{r[key]:.2f} ({_f(r.get(key + '_e2e'))})"

        wrong = [c for c, ok in row["correct"].items() if ok is False]
        body.append([row["case"], row["size"], _f(row["numpy_s"], ".1f"),
                     _f(row["threaded_s"], ".1f"), _f(row["read-only_s"], ".1f"),
                     both("jobqueue"), both("hpcscale-testbed"), both("hpcscale-local"),
                     _f(row["testbed_vs_script"]), pair("testbed_vs_read-only"),
                     pair("testbed_vs_threaded"),
                     "yes" if not wrong else "NO: " + ",".join(wrong)])
    return _table(header, body)


def _startup_table(result: dict[str, Any]) -> list[str]:
    header = ["case", "size", "contestant", "sbatch", "allocated", "1st worker", "own",
              "sbatch->1st", "all", "written", "exit", "peak", "idle", "above", "x chunk"]
    body = []
    chunk = {s["label"]: s["chunk_bytes"] for s in result["sizes"]}
    for r in result["runs"]:
        if r["contestant"] not in ("jobqueue", "script-local", "hpcscale-testbed",
                                   "hpcscale-local"):
            continue
        tl = r.get("timeline") or {}
        extra = above_idle(r)
        threads = r.get("threads_per_worker") or 1
        own = _f(r.get("reported_first_worker_s"))
        if tl.get("first_worker") is None and own != "-":
            own += "*"
        estimated = "~" if "estimate" in (r.get("base_memory") or {}) else ""
        body.append([r["case"], r["size"], r["contestant"], _f(tl.get("submit")),
                     _f(tl.get("allocate")), _f(tl.get("first_worker")), own,
                     _f(r.get("submit_to_first_worker_s")), _f(tl.get("all_workers")),
                     _f(tl.get("written"), ".1f"), _f(r.get("wall_s"), ".1f"), _mib(peak(r)),
                     _mib(_idle(r)) + estimated, _mib(extra),
                     _f(None if extra is None else extra / (chunk[r["size"]] * threads), ".1f")])
    return _table(header, body)


def _notes(runs: list[dict[str, Any]]) -> list[str]:
    notes = []
    for r in runs:
        where = f"{r['case']}@{r['size']} {r['contestant']}"
        if not r.get("ok"):
            notes.append(f"  FAILED {where}: {r.get('error')}")
        if r.get("lost_jobs"):
            notes.append(f"  LOST WORKERS {where}: jobs {', '.join(r['lost_jobs'])} ended early "
                         "and were replaced; its times include that (see its job logs)")
        if r.get("left_in_queue"):
            notes.append(f"  LEFT IN QUEUE {where}: {', '.join(r['left_in_queue'])} (cancelled)")
    return notes
