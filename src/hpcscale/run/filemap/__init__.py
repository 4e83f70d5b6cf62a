"""``hpcscale map``: a user's function run once per file, with an index of what happened.

The function is ``f(path, out_dir, **kwargs) -> dict | None``; each input file
gets a folder of its own under the output (``out_dir``), and what the function
returns is the file's row in ``index.zarr`` (an xarray Dataset indexed by
``file``) and ``index.csv``. A failing file does not stop the others; a re-run of
the same command processes only the files that are not ok.

:func:`prepare` (:mod:`~hpcscale.run.filemap.preparation`) refuses bad input
and writes nothing; :func:`execute` runs the files on one of two engines:
:mod:`~hpcscale.run.filemap.dask_engine` (the run's dask workers) or
:mod:`~hpcscale.run.filemap.array_engine` (one SLURM job array, its tasks with
no connection back), and always writes the index from the journal
(:mod:`~hpcscale.run.filemap.index`).
"""

from __future__ import annotations

from hpcscale.run.dasklog import dask_logs_to
from hpcscale.run.filemap.index import MapFile, Results, record_of
from hpcscale.run.filemap.preparation import MapPrepared, prepare
from hpcscale.run.filemap.task import OK
from hpcscale.run.filemap.types import MapSummary
from hpcscale.run.types import Reporter, Silent
from hpcscale.rundir import RunDir, RunState

__all__ = ["MapFile", "MapPrepared", "MapSummary", "Results", "execute", "prepare"]


def execute(
    prep: MapPrepared, reporter: Reporter | None = None, run_dir: RunDir | None = None, *,
    keep_logs: bool = False,
) -> MapSummary:
    """Run a prepared map: process the files not yet ok, then write the index.

    Returns the summary whatever became of the files; :meth:`MapSummary.check` raises
    the one-line ``RunError`` when some failed or were not run (the CLI exits 1). An
    exception (Ctrl-C included) still leaves the index of what finished. ``run_dir``:
    an existing run directory to adopt (a batch run's).
    """
    reporter = reporter or Silent()
    results = prep.results
    summary = MapSummary(
        "", "", prep.profile.name, prep.spec.map.output, 0.0, prep.plan.workload.bytes_in, 0,
        files=len(prep.files), ok=prep.resumed, resumed=prep.resumed, engine=prep.engine,
        index=results.said("index.zarr"), table=results.said("index.csv"),
    )
    results.start(record_of(prep.fn.describe(), prep.kwargs, prep.spec.map.files),
                  overwrite=prep.overwrite)
    try:
        if prep.todo:
            rundir = run_dir or RunDir.create(prep.spec, prep.profile, prep.plan,
                                              trusted=prep.trusted,
                                              profile_files=prep.profile_files)
            summary.run_id, summary.run_dir = rundir.run_id, str(rundir.path)
            with dask_logs_to(rundir.dask_log, keep=keep_logs):
                _engine(prep, reporter, rundir, summary)
        else:
            reporter.info(f"nothing to process: all {len(prep.files)} files are ok in "
                          f"{results.shown} (--overwrite processes them again)")
            if run_dir is not None:  # a batch run's, made when its script was written
                run_dir.update(state=RunState.DONE)
    except BaseException:
        try:
            _index(prep, summary)
        except Exception as err:  # the run's own error is the one to report
            reporter.info(f"the index could not be written: {err}; the journal in "
                          f"{results.own} keeps every finished row")
        raise
    _index(prep, summary)
    for line in summary.left_out:
        reporter.info(f"left out of the index: {line}")
    return summary


def _engine(prep: MapPrepared, reporter: Reporter, rundir: RunDir,
            summary: MapSummary) -> None:
    if prep.engine == "array":
        from hpcscale.run.filemap import array_engine

        array_engine.run(prep, reporter, rundir, summary)
    else:
        from hpcscale.run.filemap import dask_engine

        dask_engine.run(prep, reporter, rundir, summary)


def _index(prep: MapPrepared, summary: MapSummary) -> None:
    """Write the index of every matched file from the rows on record; the summary's
    counts from it."""
    rows = prep.results.read_rows()
    attrs = {**record_of(prep.fn.describe(), prep.kwargs, prep.spec.map.files),
             "run_id": summary.run_id}
    summary.left_out = tuple(prep.results.write_index(prep.files, rows, attrs))
    status = [rows[f.key].get("status") if f.key in rows else None for f in prep.files]
    summary.ok = sum(s == OK for s in status)
    summary.not_run = sum(s is None for s in status)
    summary.failed = len(status) - summary.ok - summary.not_run
