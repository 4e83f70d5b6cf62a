"""Terminal output: results on stdout, status and errors on stderr.

Colours and live lines only on a terminal (rich decides); ``--quiet`` keeps
only errors and the final result; ``--json`` prints one JSON document.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text


@dataclass
class Options:
    debug: bool = False
    quiet: bool = False
    json: bool = False
    trust_profiles: bool = False


OPTIONS = Options()
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def say(text: str) -> None:
    """Informational line (stderr), dropped by --quiet and --json."""
    if not (OPTIONS.quiet or OPTIONS.json):
        err.print(text, markup=False)


def result(text: str, data: Any = None) -> None:
    """The command's result: text on stdout, or ``data`` as JSON with --json."""
    if OPTIONS.json:
        print(json.dumps(data if data is not None else {"result": text}, indent=2, default=str))
    else:
        out.print(text, markup=False)


def error(message: str) -> None:
    err.print(Text("error: ", style="bold red") + Text(message))


@dataclass
class ConsoleReporter:
    """Live status line while jobs are pending, a progress line with rate and ETA."""

    live: Live | None = None
    started: float = field(default_factory=time.monotonic)
    compute_started: float | None = None

    def __enter__(self) -> ConsoleReporter:
        if not (OPTIONS.quiet or OPTIONS.json) and err.is_terminal:
            self.live = Live(Text(""), console=err, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def _show(self, text: str) -> None:
        if self.live is not None:
            self.live.update(Text(text))

    def status(self, text: str) -> None:
        self._show(f"[{time.monotonic() - self.started:5.0f}s] {text}")

    def info(self, text: str) -> None:
        say(text)

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.compute_started is None:
            self.compute_started = now
        elapsed = max(now - self.compute_started, 1e-6)
        rate = done / elapsed
        eta = (total - done) / rate if rate > 0 else None
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        eta_text = f"ETA {eta:4.0f}s" if eta is not None else "ETA   ?"
        self._show(f"computing [{bar}] {done}/{total} tasks  {rate:6.1f} tasks/s  {eta_text}")
