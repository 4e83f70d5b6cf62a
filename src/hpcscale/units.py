"""Bytes and walltimes: parsed once, formatted for SLURM exactly.

Memory strings must name their unit: ``4GB`` is 4 * 1000**3 bytes and ``4GiB``
is 4 * 1024**3 bytes. A bare ``4G`` is refused, because SLURM reads it as GiB
and dask as GB -- the exact confusion this module exists to prevent.
"""

from __future__ import annotations

import re

_UNITS: dict[str, int] = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
}
_BYTES_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")
MIB = 1024**2


def parse_bytes(text: str | int) -> int:
    """Parse ``"4GiB"``, ``"4GB"``, ``"512MiB"`` or a byte count into bytes.

    Raises ``ValueError`` with the allowed forms; callers add which key it was.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a size such as 4GiB or 4GB, got {text!r}")
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"expected a positive number of bytes, got {text}")
        return text
    match = _BYTES_RE.match(str(text))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in _UNITS:
        raise ValueError(
            f"expected a size with an explicit unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), "
            f"e.g. 4GiB or 4GB, got {text!r}"
        )
    value = float(match.group(1)) * _UNITS[unit]
    if value < 1 or value != int(value):
        raise ValueError(f"size {text!r} is not a positive whole number of bytes")
    return int(value)


def format_bytes(n: int) -> str:
    """Human form with a binary unit, exact when it can be (``4GiB``, ``3.73GiB``)."""
    for unit, size in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.2f}{unit}"
    return f"{n}B"


def slurm_mem(n: int) -> str:
    """SLURM's ``--mem`` value for ``n`` bytes: whole MiB, rounded down.

    SLURM's unit is the MiB; rounding down keeps the request within what the
    profile says (``4GB`` -> ``3814M``, ``4GiB`` -> ``4096M``).
    """
    mib = n // MIB
    if mib < 1:
        raise ValueError(f"{n} bytes is less than SLURM's smallest memory request (1 MiB)")
    return f"{mib}M"


def slurm_mem_bytes(n: int) -> int:
    """The bytes SLURM actually grants for a request of ``n`` bytes."""
    return (n // MIB) * MIB


_WALL_RE = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")


def parse_walltime(text: str | int) -> int:
    """Parse a SLURM time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) into seconds.

    Plain integers are minutes, as in SLURM. Raises ``ValueError``.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a walltime such as 01:30:00, got {text!r}")
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"expected a positive number of minutes, got {text}")
        return text * 60
    match = _WALL_RE.match(str(text).strip())
    if not match:
        raise ValueError(
            f"expected a SLURM walltime (MM, MM:SS, HH:MM:SS or D-HH:MM:SS), got {text!r}"
        )
    days, a, b, c = match.groups()
    fields = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:
        # D-HH, D-HH:MM, D-HH:MM:SS
        h, m, s = [*fields, 0, 0][:3]
        seconds = int(days) * 86400 + h * 3600 + m * 60 + s
    elif len(fields) == 1:
        seconds = fields[0] * 60
    elif len(fields) == 2:
        seconds = fields[0] * 60 + fields[1]
    else:
        seconds = fields[0] * 3600 + fields[1] * 60 + fields[2]
    if seconds <= 0:
        raise ValueError(f"walltime {text!r} is not positive")
    return seconds


def format_walltime(seconds: int) -> str:
    """SLURM's ``-t`` form: ``HH:MM:SS``, or ``D-HH:MM:SS`` past a day."""
    days, rest = divmod(int(seconds), 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    if days:
        return f"{days}-{h:02d}:{m:02d}:{s:02d}"
    return f"{h:02d}:{m:02d}:{s:02d}"


def parse_slurm_time(text: str) -> int | None:
    """Parse a time as ``scontrol``/``sinfo`` print it; ``None`` for UNLIMITED/INFINITE."""
    if text.strip().upper() in {"UNLIMITED", "INFINITE", "NONE", "N/A", ""}:
        return None
    days = 0
    rest = text.strip()
    if "-" in rest:
        d, rest = rest.split("-", 1)
        days = int(d)
    parts = [int(x) for x in rest.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return days * 86400 + h * 3600 + m * 60 + s
