"""One task of a map run's SLURM job array: ``python -m hpcscale.run.filemap.arraytask RUNDIR``.

It needs no network connection to the node that submitted the array: it reads
its share of the files and the pickled function from the run directory, and
writes a row per file to its own rows file in the output folder (both on a
shared file system). Before any file, it imports the function's module (and
unpickles the function); when that fails, it writes one line saying why to
``<array>_<task>.error`` beside the rows and cancels the whole array, so no task
processes a file with a function that cannot run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpcscale.config.functions import import_on_worker
from hpcscale.run.filemap import task
from hpcscale.rundir import RunDir

IMPORT_FAILED = 3  # the exit code of a task whose function does not load


def share(files: list[Any], tasks: int, index: int) -> list[Any]:
    """Task ``index``'s files of ``tasks``: every ``tasks``-th, so shares differ by one at most
    and neighbours (often of similar size) spread over the tasks."""
    return files[index::tasks]


def main(run_dir: str) -> int:
    rd = RunDir(Path(run_dir).name, Path(run_dir))
    plan = json.loads(rd.array_plan.read_text("utf-8"))
    index = int(os.environ["SLURM_ARRAY_TASK_ID"])
    array = os.environ.get("SLURM_ARRAY_JOB_ID", "0")
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
    rows_dir = Path(plan["rows"])
    why = import_on_worker(plan["module"])
    func: Any = None
    kwargs: dict[str, Any] = {}
    if why is None:
        try:
            func, kwargs = _load(rd.array_function.read_bytes())
        except Exception as err:  # the user's code, unpickled here: any error is theirs
            why = f"{task.error_line(err)} (python {sys.executable})"
    if why is not None:
        _stop(rows_dir / f"{array}_{index}.error", plan, node, index, why, array)
        return IMPORT_FAILED
    mine = share(plan["files"], int(plan["tasks"]), index)
    cores = int(os.environ.get("SLURM_CPUS_PER_TASK") or 1)
    _STATE.update(func=func, kwargs=kwargs, results=Path(plan["results"]),
                  worker=f"{node} array task {index}", source=plan.get("source", ""))
    with (rows_dir / f"{array}_{index}.jsonl").open("a", encoding="utf-8") as out:
        for row in _rows(mine, cores):
            out.write(json.dumps(row, default=str) + "\n")
            out.flush()
    return 0


_STATE: dict[str, Any] = {}  # what each file needs, set before the pool forks


def _one(item: list[str]) -> dict[str, Any]:
    key, file, name = item
    row = task.run_one(_STATE["func"], key, str(_STATE["results"] / name), _STATE["kwargs"],
                       worker=_STATE["worker"], source=_STATE["source"])
    row.update(key=key, file=file, dir=name)
    return row


def _rows(files: list[list[str]], cores: int) -> Iterator[dict[str, Any]]:
    """Each file's row as it finishes: one after the other, or with a process per core of
    the task (forked: the function, loaded once, is not pickled again)."""
    if cores <= 1 or len(files) <= 1:
        yield from map(_one, files)
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(min(cores, len(files))) as pool:
        yield from pool.imap_unordered(_one, files)


def _load(data: bytes) -> tuple[Any, dict[str, Any]]:
    import cloudpickle

    func, kwargs = cloudpickle.loads(data)
    return func, dict(kwargs)


def _stop(path: Path, plan: dict[str, Any], node: str, index: int, why: str,
          array: str) -> None:
    """Say why in one line, then cancel the whole array (this task too)."""
    what = (f"module {plan['module']!r} does not import" if plan["module"]
            else f"{plan['function']} does not load")
    line = (f"{plan['where']}: {what} on the compute nodes (array task {index} on {node}): "
            f"{why}; no file was processed")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(line + "\n", encoding="utf-8")
    tmp.replace(path)
    print(line, file=sys.stderr, flush=True)
    subprocess.run(["scancel", array], check=False, capture_output=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
