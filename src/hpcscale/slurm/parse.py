"""Pure parsers of SLURM's output, tested on canned text."""

from __future__ import annotations


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
