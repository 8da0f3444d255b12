"""What `status` prints, from the run's job views (`runner.views.jobs`): pure formatting.

The folder's `plan.jsonl` and `ledger.jsonl` together speak of every job, including the
ones never submitted; each line also says what the next `run` will do with the job and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runner.batch import Action
from runner.domain import JobState
from runner.errors import EXIT_JOBS_FAILED, EXIT_OK, EXIT_WORK_REMAINS
from runner.views.jobs import JobView, state_counts

_REMAINING = (JobState.PENDING, JobState.SUBMITTED, JobState.RUNNING)


def status_json(view: JobView) -> dict[str, Any]:
    """The `status --json` object (product.md) plus `next`, `attempt` and `cost`."""
    return {
        "id": view.id,
        "model": view.model,
        "state": view.state.value,
        "jobId": view.job_id,
        "assets": [
            {"assetId": a.asset_id, "path": a.path, "sha256": a.sha256, "bytes": a.bytes}
            for a in view.assets
        ],
        "error": view.error,
        "next": view.next_reason,
        "attempt": view.attempt,
        "cost": view.cost,
    }


def status_lines(views: Sequence[JobView]) -> list[str]:
    """The `status` table: a header, a line per job, then the counts and the cost."""
    width = max((len(v.id) for v in views), default=2)
    costs = [f"{v.cost:g}" if v.cost else "-" for v in views]
    cost_width = max((len(c) for c in costs), default=2)
    lines = [f"{'job':<{width}}  {'state':<9}  {'jobId':<28}  {'CU':>{cost_width}}  next run"]
    lines.extend(
        f"{v.id:<{width}}  {v.state.value:<9}  {v.job_id or '-':<28}  {cost:>{cost_width}}  "
        f"{v.next_reason}" + (f"  [{v.error}]" if v.error else "")
        for v, cost in zip(views, costs, strict=True)
    )
    counts = state_counts(views)
    summary = ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "no jobs"
    lines.append(f"{summary}; {sum(v.cost for v in views):g} CU spent")
    return lines


def status_exit_code(views: Sequence[JobView]) -> int:
    """`status`'s exit code, over the planned jobs: 4 while work remains (a job pending,
    submitted or running, or a success whose files the next run fetches), else 1 when some
    failed or were canceled, else 0 (every job succeeded with its files)."""
    planned = [v for v in views if v.planned]
    if any(v.state in _REMAINING or v.next_action is Action.DOWNLOAD for v in planned):
        return EXIT_WORK_REMAINS
    if any(v.state in (JobState.FAILED, JobState.CANCELED) for v in planned):
        return EXIT_JOBS_FAILED
    return EXIT_OK
