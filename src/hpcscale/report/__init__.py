"""The run report: ``report.html`` in a run's directory, the plan beside what happened."""

from hpcscale.report.html import (
    REPORT,
    JobTimes,
    Planned,
    RunRecord,
    ensure_report,
    find_run,
    job_times,
    load,
    plan_from_text,
    report_figure,
    write_png,
    write_report,
)

__all__ = ["REPORT", "JobTimes", "Planned", "RunRecord", "ensure_report", "find_run",
           "job_times", "load", "plan_from_text", "report_figure", "write_png", "write_report"]
