"""dask's log records go to the run's log; the few a user should see are rephrased."""

from __future__ import annotations

import logging
from pathlib import Path

from hpcscale.run.dasklog import dask_logs_to


def test_warnings_that_matter_are_rephrased_once_and_the_rest_stay_in_the_log(
    tmp_path: Path,
) -> None:
    log, said = tmp_path / "dask.log", []
    with dask_logs_to(log, say=said.append):
        sched = logging.getLogger("distributed.core")
        sched.warning("Event loop was unresponsive in Scheduler for 3.27s.  This is often "
                      "caused by long-running GIL-holding functions")
        sched.warning("Event loop was unresponsive in Scheduler for 5.10s.  Again")
        logging.getLogger("distributed.scheduler").error(
            "Task ('mean-abc', 3) marked as failed because 3 workers died while trying to run it")
        logging.getLogger("distributed.batched").info("Batched Comm Closed")
        logging.getLogger("distributed.scheduler").info(
            "Event loop was unresponsive in Scheduler for 9.00s")  # INFO: not said
    assert said == [
        f"this machine is busy: dask's Scheduler stopped answering for 3.27 s (a busy "
        f"login node slows the run; details in {log})",
        f"a task was given up after 3 of its workers died running it (out of memory? see "
        f"the worker logs and {log})",
    ]
    text = log.read_text()
    assert text.count("Event loop was unresponsive") == 3
    assert "Batched Comm Closed" in text
