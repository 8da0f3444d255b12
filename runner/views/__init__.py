"""What the commands show of a run or a manifest: pure views, no I/O beyond file sizes.

`jobs` builds the one per-job view (`JobView`, `job_views`) and counts states
(`state_counts`); `status` and `report` format those views; `plan_summary` sums up a
manifest for `plan` and holds the seconds-of-video rule (`video_seconds`) all of them use.
"""

from runner.views.jobs import (
    LEFT_ALONE,
    JobView,
    files_present,
    job_view,
    job_views,
    state_counts,
)
from runner.views.plan_summary import PlanSummary, job_seconds, summarize_plan, video_seconds
from runner.views.report import (
    PROMPT_EXCERPT,
    ReportSummary,
    excerpt,
    human_bytes,
    render_report,
    summarize,
)
from runner.views.status import status_json, status_lines

__all__ = [
    "LEFT_ALONE",
    "PROMPT_EXCERPT",
    "JobView",
    "PlanSummary",
    "ReportSummary",
    "excerpt",
    "files_present",
    "human_bytes",
    "job_seconds",
    "job_view",
    "job_views",
    "render_report",
    "state_counts",
    "status_json",
    "status_lines",
    "summarize",
    "summarize_plan",
    "video_seconds",
]
