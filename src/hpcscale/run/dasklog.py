"""Where dask's and distributed's own log records go while a run lasts: the run's log,
not the user's terminal."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Loggers whose records belong in the run's log, not on the terminal: those
# distributed gives a stderr handler of its own, and the libraries under it.
_LIBRARY_LOGGERS = ("distributed", "dask", "dask_jobqueue", "bokeh", "tornado", "asyncio")


# dask's warnings a user should see, rephrased as one hpcscale line (said once per run
# each): (logger prefix, pattern of the record's first line, the line to say).
RULES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("distributed", re.compile(r"Event loop was unresponsive in (\w+) for ([\d.]+)s"),
     "this machine is busy: dask's {0} stopped answering for {1} s (a busy login node "
     "slows the run; details in {log})"),
    ("distributed", re.compile(r"marked as failed because (\d+) workers died"),
     "a task was given up after {0} of its workers died running it (out of memory? "
     "see the worker logs and {log})"),
    ("distributed", re.compile(r"Worker is at (\d+)% memory usage\. Pausing"),
     "a worker is at {0}% of its memory and paused (details in {log})"),
    ("distributed", re.compile(r"Lost all workers"),
     "every worker left the scheduler (details in {log})"),
)


class _RunLog(logging.Handler):
    """Appends records to the run's log. Not a StreamHandler on purpose: a
    LocalCluster's ``silence_logs`` turns every StreamHandler of ``distributed``
    down to CRITICAL while it runs, and the run's log should keep them all."""

    def __init__(self, path: Path, say: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.path = path
        self.file = path.open("a", encoding="utf-8")
        self.say = say
        self.said: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if self.file.closed:
            return  # a record of another thread, after the run ended
        try:
            self.file.write(self.format(record) + "\n")
            self.file.flush()
            if self.say is not None and record.levelno >= logging.WARNING:
                self._rephrase(record)
        except Exception:
            self.handleError(record)

    def _rephrase(self, record: logging.LogRecord) -> None:
        first = next(iter(record.getMessage().splitlines()), "")
        for i, (prefix, pattern, text) in enumerate(RULES):
            if i in self.said or not record.name.startswith(prefix):
                continue
            found = pattern.search(first)
            if found and self.say is not None:
                self.said.add(i)
                self.say(text.format(*found.groups(), log=self.path))

    def close(self) -> None:
        self.file.close()
        super().close()


@contextmanager
def dask_logs_to(path: Path, *, keep: bool = False,
                 say: Callable[[str], None] | None = None) -> Iterator[None]:
    """While a run lasts, dask's, distributed's (and tornado's, bokeh's, asyncio's)
    log records go to ``path`` only: a worker's closed comm is a traceback there,
    not on the user's terminal. The loggers are restored afterwards, unless
    ``keep``: a command whose process ends with the run keeps them pointed at the
    run's log, for what dask says while the interpreter shuts down. The few warnings
    a user should see (:data:`RULES`) are also handed to ``say``, rephrased, once each."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = _RunLog(path, say)
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
