"""``python -m hpcscale.report RUN_DIR``: write a run's report.html (what a finished
run starts in the background: see :func:`hpcscale.run.execution.draw_report`)."""

import sys
from pathlib import Path

from hpcscale.report import write_report

if len(sys.argv) != 2:
    sys.exit("usage: python -m hpcscale.report RUN_DIR")
write_report(Path(sys.argv[1]))
