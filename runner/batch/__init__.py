"""The batch core: one run from prepared records to the last download — resume decisions,
admission, budget, submission, following, the scheduler and its controls — and `cancel`."""

from runner.batch.admission import (
    Admission,
    Bucket,
    Gauge,
    ModelLimiters,
    RateLimiter,
    Slots,
    reserve_slot,
)
from runner.batch.book import JobBook, count_failures
from runner.batch.budget import Budget, OverBudget
from runner.batch.cancel import cancel_jobs, cancel_pending, cancel_targets, record_cancellations
from runner.batch.claim import batch_identity
from runner.batch.control import Control, FailureLimit, HaltReason, halt_reason_for
from runner.batch.engine import (
    Endpoint,
    Live,
    PreparedRun,
    RunOptions,
    RunResult,
    default_options,
    live_state,
    prepare_run,
    run_batch,
)
from runner.batch.following import Follower
from runner.batch.numbering import keep_paid_numbers
from runner.batch.pricing import Estimate, estimate_jobs
from runner.batch.progress import (
    Progress,
    Snapshot,
    account_cap,
    cost_text,
    ending_text,
    format_duration,
    format_rate,
    progress_line,
    retried_text,
)
from runner.batch.resume import Action, Decision, changed_fields, changed_inputs, decide
from runner.batch.scheduler import Scheduler, WorkItem
from runner.batch.selection import Selection, check_patterns, id_matches, pilot, select_jobs
from runner.batch.sessions import api_sessions
from runner.batch.sharing import Coordination
from runner.batch.submission import Submitter
from runner.batch.window import Window, after_acceptance, after_refusal, opening_window
from runner.batch.withdrawals import (
    REQUESTS_NAME,
    Withdrawals,
    local_cancellation,
    settle_leftovers,
)
from runner.batch.work import work_items

__all__ = [
    "REQUESTS_NAME",
    "Action",
    "Admission",
    "Bucket",
    "Budget",
    "Control",
    "Coordination",
    "Decision",
    "Endpoint",
    "Estimate",
    "FailureLimit",
    "Follower",
    "Gauge",
    "HaltReason",
    "JobBook",
    "Live",
    "ModelLimiters",
    "OverBudget",
    "PreparedRun",
    "Progress",
    "RateLimiter",
    "RunOptions",
    "RunResult",
    "Scheduler",
    "Selection",
    "Slots",
    "Snapshot",
    "Submitter",
    "Window",
    "Withdrawals",
    "WorkItem",
    "account_cap",
    "after_acceptance",
    "after_refusal",
    "api_sessions",
    "batch_identity",
    "cancel_jobs",
    "cancel_pending",
    "cancel_targets",
    "changed_fields",
    "changed_inputs",
    "check_patterns",
    "cost_text",
    "count_failures",
    "decide",
    "default_options",
    "ending_text",
    "estimate_jobs",
    "format_duration",
    "format_rate",
    "halt_reason_for",
    "id_matches",
    "keep_paid_numbers",
    "live_state",
    "local_cancellation",
    "opening_window",
    "pilot",
    "prepare_run",
    "progress_line",
    "record_cancellations",
    "reserve_slot",
    "retried_text",
    "run_batch",
    "select_jobs",
    "settle_leftovers",
    "work_items",
]
