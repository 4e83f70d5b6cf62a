"""Pure parsers of SLURM's output, tested on canned text."""

from __future__ import annotations

import re
from dataclasses import dataclass


def parse_oneliner(text: str) -> list[dict[str, str]]:
    """Parse ``scontrol show ... --oneliner`` output: one dict per record."""
    records = []
    for line in text.splitlines():
        record: dict[str, str] = {}
        for token in line.split():
            if "=" in token:
                key, value = token.split("=", 1)
                record[key] = value
        if record:
            records.append(record)
    return records


ASSOC_FIELDS = ("Account", "QOS", "MaxJobs", "MaxSubmitJobs", "MaxWall")


def parse_associations(text: str) -> list[dict[str, str]]:
    """``sacctmgr --parsable2 --noheader ... format=<ASSOC_FIELDS>`` output: one dict a line."""
    rows = []
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) == len(ASSOC_FIELDS):
            rows.append(dict(zip(ASSOC_FIELDS, (f.strip() for f in fields), strict=True)))
    return rows


@dataclass(frozen=True)
class ExpectedStart:
    """What ``sbatch --test-only`` says of a job it would have submitted."""

    start: str  # SLURM's expected start, its controller's local time (ISO 8601)
    processors: int
    nodes: str
    partition: str


# sbatch: Job 1285 to start at 2026-12-01T03:16:18 using 1 processors on nodes c1 in
# partition debug
_TEST_ONLY = re.compile(
    r"Job \d+ to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) using (\d+) processors? "
    r"on nodes? (\S+) in partition (\S+)")


def parse_test_only(text: str) -> ExpectedStart | None:
    """The expected start in ``sbatch --test-only``'s output (it writes it to stderr);
    None when it says none (a refusal, an error, another SLURM's words)."""
    found = _TEST_ONLY.search(text)
    if found is None:
        return None
    return ExpectedStart(found[1], int(found[2]), found[3], found[4])
