"""Small file-system helpers every layer uses: atomic writes, is-this-process-alive."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def atomic_write(path: Path, data: str | bytes, *, mode: int | None = None) -> None:
    """Write ``path`` through a temporary file beside it and a rename, so a reader
    (or a driver killed mid-write) never sees half a file. ``mode``: its permissions."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    if mode is not None:
        os.chmod(tmp, mode)
    tmp.replace(path)


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON, atomically; values JSON cannot hold become strings."""
    atomic_write(path, json.dumps(data, indent=2, default=str) + "\n")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
