"""``hpcscale doctor``: check what a newcomer's set-up usually gets wrong, and say what to fix."""

from hpcscale.doctor.checks import Check, Report, Status, diagnose

__all__ = ["Check", "Report", "Status", "diagnose"]
