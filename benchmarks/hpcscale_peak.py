"""``python -m benchmarks.hpcscale_peak RESULT ARGS...``: the hpcscale command with
ARGS, in this process, writing its peak resident memory to RESULT at exit (the
driver's peak; with the local default, the worker threads' too)."""

from __future__ import annotations

import atexit
import json
import resource
import sys
from pathlib import Path


def _write(path: Path) -> None:
    peak = int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
    path.write_text(json.dumps({"driver_peak": peak}) + "\n")


def main() -> None:
    result = Path(sys.argv[1])
    atexit.register(_write, result)
    sys.argv = ["hpcscale", *sys.argv[2:]]
    from hpcscale.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
