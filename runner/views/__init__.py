"""What the commands show of a run or a manifest: pure views, no I/O beyond file sizes.

`jobs` builds the one per-job view (`JobView`, `job_views`) and counts states
(`state_counts`); `timeline` folds the ledger's events into the run over time; `summary`
sums views and timeline up; `status`, `report` (with `report_cards` and `report_timeline`),
`results` (results.csv) and `dataset_card` (README.md) format them; `plan_summary` sums up
a manifest for `plan` and holds the seconds-of-video rule (`video_seconds`) all of them use.
"""

from runner.views.dataset_card import (
    CARD_MARK,
    CardContext,
    md_code,
    md_text,
    render_dataset_card,
    size_category,
)
from runner.views.jobs import (
    LEFT_ALONE,
    JobView,
    files_present,
    job_view,
    job_views,
    state_counts,
)
from runner.views.plan_summary import PlanSummary, job_seconds, summarize_plan, video_seconds
from runner.views.report import ReportContext, render_report
from runner.views.report_cards import card_data, cards_json, link, script_json
from runner.views.report_timeline import bucket_peaks, cumulative, timeline_svg
from runner.views.results import RESULT_COLUMNS, result_lines, result_row, spreadsheet_text
from runner.views.status import status_exit_code, status_json, status_lines
from runner.views.summary import (
    PROMPT_EXCERPT,
    FailureGroup,
    ReportSummary,
    excerpt,
    failure_groups,
    failure_reason,
    format_cost,
    human_bytes,
    human_seconds,
    summarize,
)
from runner.views.timeline import JobTiming, Timeline, held_level, percentile, timeline_of

__all__ = [
    "CARD_MARK",
    "LEFT_ALONE",
    "PROMPT_EXCERPT",
    "RESULT_COLUMNS",
    "CardContext",
    "FailureGroup",
    "JobTiming",
    "JobView",
    "PlanSummary",
    "ReportContext",
    "ReportSummary",
    "Timeline",
    "bucket_peaks",
    "card_data",
    "cards_json",
    "cumulative",
    "excerpt",
    "failure_groups",
    "failure_reason",
    "files_present",
    "format_cost",
    "held_level",
    "human_bytes",
    "human_seconds",
    "job_seconds",
    "job_view",
    "job_views",
    "link",
    "md_code",
    "md_text",
    "percentile",
    "render_dataset_card",
    "render_report",
    "result_lines",
    "result_row",
    "script_json",
    "size_category",
    "spreadsheet_text",
    "state_counts",
    "status_exit_code",
    "status_json",
    "status_lines",
    "summarize",
    "summarize_plan",
    "timeline_of",
    "timeline_svg",
    "video_seconds",
]
