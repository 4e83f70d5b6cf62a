from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hpcscale import units


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GiB", 4 * 1024**3),
        ("4GB", 4 * 1000**3),
        ("4gb", 4 * 1000**3),
        ("512MiB", 512 * 1024**2),
        ("1.5GiB", 3 * 512 * 1024**2),
        ("100B", 100),
        ("2TiB", 2 * 1024**4),
        (1234, 1234),
    ],
)
def test_parse_bytes_exact(text: str | int, expected: int) -> None:
    assert units.parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["4G", "4", "4 GiBs", "-1GB", "GB", "", "1.5B", 0, True])
def test_parse_bytes_refuses_ambiguous(bad: str | int) -> None:
    with pytest.raises(ValueError, match=r"expected|not a positive"):
        units.parse_bytes(bad)


@pytest.mark.parametrize(
    ("n", "mem"),
    [(4 * 1024**3, "4096M"), (4 * 1000**3, "3814M"), (28 * 1000**3, "26702M"),
     (1024**2, "1M")],
)
def test_slurm_mem_is_whole_mib_rounded_down(n: int, mem: str) -> None:
    assert units.slurm_mem(n) == mem
    assert units.slurm_mem_bytes(n) <= n


@given(st.integers(min_value=1024**2, max_value=2**50))
def test_slurm_mem_never_exceeds_request(n: int) -> None:
    granted = units.slurm_mem_bytes(n)
    assert granted <= n < granted + units.MIB
    assert units.slurm_mem(n) == f"{granted // units.MIB}M"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), (30, 1800), ("10:00", 600), ("01:30:00", 5400), ("2-00", 172800),
     ("1-02:03:04", 93784), ("1-02:03", 93780)],
)
def test_parse_walltime(text: str | int, seconds: int) -> None:
    assert units.parse_walltime(text) == seconds


@pytest.mark.parametrize("bad", ["1h", "00:00:00", "abc", "1:2:3:4", "", 0, -5])
def test_parse_walltime_refuses(bad: str | int) -> None:
    with pytest.raises(ValueError, match=r"walltime|positive"):
        units.parse_walltime(bad)


@given(st.integers(min_value=1, max_value=400 * 86400))
def test_walltime_round_trip(seconds: int) -> None:
    assert units.parse_walltime(units.format_walltime(seconds)) == seconds
    assert units.parse_slurm_time(units.format_walltime(seconds)) == seconds


def test_parse_slurm_time_unlimited() -> None:
    assert units.parse_slurm_time("UNLIMITED") is None
    assert units.parse_slurm_time("1:00") == 60  # sinfo's MM:SS
    assert units.parse_slurm_time("00:01:00") == 60
