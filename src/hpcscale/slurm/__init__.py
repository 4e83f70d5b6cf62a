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
    job_node,
    queue,
    run,
    submit_script,
    user,
)
from hpcscale.slurm.parse import ASSOC_FIELDS, parse_associations, parse_oneliner
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
    "ASSOC_FIELDS", "TIMEOUT", "JobState", "Limits", "Node", "Partition", "SlurmCommandError",
    "SlurmUnavailable", "association", "associations", "available", "cancel", "expand_hostlist",
    "job_node", "limits", "nodes", "parse_associations", "parse_oneliner", "partitions", "queue",
    "run", "submit_script", "user",
]
