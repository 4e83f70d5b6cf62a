"""Small file-system helpers every layer uses: reading a user's TOML file, atomic writes,
is-this-process-alive."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from hpcscale.errors import HpcscaleError


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


def read_toml(path: Path, error_cls: type[HpcscaleError], what: str) -> dict[str, Any]:
    """The TOML table in ``path``, or ``error_cls("WHAT PATH: ...")`` in one line.

    Covers every way a user's file can be unreadable: missing, a directory, no
    permission, not UTF-8 (TOML files are UTF-8 by definition) and TOML syntax.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise error_cls(f"{what} {path}: no such file") from err
    except OSError as err:
        raise error_cls(f"{what} {path}: cannot read it ({err.strerror or err})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise error_cls(
            f"{what} {path}: not UTF-8 text (byte 0x{raw[err.start]:02x} on line {line}); "
            "TOML files must be UTF-8: save it as UTF-8"
        ) from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        # tomllib's message ends with "(at line L, column C)"
        raise error_cls(f"{what} {path}: TOML syntax error: {err}") from err
