"""Where dask's and distributed's own log records go while a run lasts: the run's log,
not the user's terminal."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Loggers whose records belong in the run's log, not on the terminal: those
# distributed gives a stderr handler of its own, and the libraries under it.
_LIBRARY_LOGGERS = ("distributed", "dask", "dask_jobqueue", "bokeh", "tornado", "asyncio")


class _RunLog(logging.Handler):
    """Appends records to the run's log. Not a StreamHandler on purpose: a
    LocalCluster's ``silence_logs`` turns every StreamHandler of ``distributed``
    down to CRITICAL while it runs, and the run's log should keep them all."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.file = path.open("a", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        if self.file.closed:
            return  # a record of another thread, after the run ended
        try:
            self.file.write(self.format(record) + "\n")
            self.file.flush()
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self.file.close()
        super().close()


@contextmanager
def dask_logs_to(path: Path, *, keep: bool = False) -> Iterator[None]:
    """While a run lasts, dask's, distributed's (and tornado's, bokeh's, asyncio's)
    log records go to ``path`` only: a worker's closed comm is a traceback there,
    not on the user's terminal. The loggers are restored afterwards, unless
    ``keep``: a command whose process ends with the run keeps them pointed at the
    run's log, for what dask says while the interpreter shuts down."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _RunLog(path)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(name)s %(levelname)s %(message)s"))
    names = {n for n in logging.Logger.manager.loggerDict
             if n.split(".")[0] in _LIBRARY_LOGGERS} | set(_LIBRARY_LOGGERS)
    saved = {}
    for name in sorted(names):
        log = logging.getLogger(name)
        # a child without handlers reaches the file through its top-level parent
        if name in _LIBRARY_LOGGERS or log.handlers:
            saved[name] = (log.handlers[:], log.propagate)
            for old in log.handlers:
                if isinstance(old, _RunLog):
                    old.close()  # an earlier run's log, kept: this run's replaces it
            log.handlers = [handler]
            log.propagate = False
    try:
        yield
    finally:
        if not keep:
            for name, (handlers, propagate) in saved.items():
                log = logging.getLogger(name)
                log.handlers, log.propagate = handlers, propagate
            handler.close()
