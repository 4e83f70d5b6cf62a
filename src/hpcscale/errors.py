"""One hierarchy of errors a user can see.

Every error a user can cause (a bad profile, a bad job spec, a path that does
not exist) is an ``HpcscaleError``: the CLI prints its message on one line and
exits with its ``exit_code`` -- 2 for usage and configuration errors, 1 for
failures at run time. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HpcscaleError(Exception):
    """Base of every error meant for the user; ``str(err)`` is one line."""

    exit_code: int = 1


class UsageError(HpcscaleError):
    """A bad command-line option or argument."""

    exit_code = 2


class ProfileError(HpcscaleError):
    """A site profile that cannot be found, parsed or trusted."""

    exit_code = 2


class JobSpecError(HpcscaleError):
    """A job spec or operation parameters that make no sense."""

    exit_code = 2


class InputError(HpcscaleError):
    """An input that does not exist or cannot be read as an array."""

    exit_code = 2


class SizingError(HpcscaleError):
    """A plan that can never run (a chunk larger than a worker, a request over a limit)."""

    exit_code = 2


class OutputError(HpcscaleError):
    """An output path that would be overwritten, or a write that failed."""

    exit_code = 2


class SubmissionError(HpcscaleError):
    """SLURM refused or lost the run's jobs; carries the command and its output."""

    exit_code = 1


class RunError(HpcscaleError):
    """The computation failed at run time."""

    exit_code = 1


class UserFunctionError(RunError):
    """A user's function (a ``map`` step) raised, or returned what its step did not
    declare; the message names the step, the function and the block."""


class Interrupted(HpcscaleError):
    """Ctrl-C, SIGTERM or SIGHUP during a run; the run's jobs were cancelled."""

    exit_code = 130
