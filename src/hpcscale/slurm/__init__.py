"""Everything that talks to SLURM: its commands (:mod:`~hpcscale.slurm.commands`), pure
parsers of their output (:mod:`~hpcscale.slurm.parse`), the live limits
(:mod:`~hpcscale.slurm.resources`) and the one sbatch-directive builder
(:mod:`~hpcscale.slurm.directives`)."""

from hpcscale.slurm.commands import (
    TIMEOUT,
    JobState,
    SlurmCommandError,
    SlurmUnavailable,
    available,
    cancel,
    expected_start,
    job_node,
    queue,
    run,
    submit_script,
    user,
)
from hpcscale.slurm.parse import (
    ASSOC_FIELDS,
    ExpectedStart,
    parse_associations,
    parse_oneliner,
    parse_test_only,
)
from hpcscale.slurm.resources import (
    Limits,
    Node,
    Partition,
    association,
    associations,
    expand_hostlist,
    limits,
    nodes,
    partitions,
)

__all__ = [
    "ASSOC_FIELDS",
    "TIMEOUT",
    "ExpectedStart",
    "JobState",
    "Limits",
    "Node",
    "Partition",
    "SlurmCommandError",
    "SlurmUnavailable",
    "association",
    "associations",
    "available",
    "cancel",
    "expand_hostlist",
    "expected_start",
    "job_node",
    "limits",
    "nodes",
    "parse_associations",
    "parse_oneliner",
    "parse_test_only",
    "partitions",
    "queue",
    "run",
    "submit_script",
    "user",
]
