"""Every job of a run as the commands show it: one frozen view per job, built one way.

`status`, `report` and the run's closing summary draw from `job_views`, so a job's state,
model, cost and seconds of video mean the same thing in each. A view is the folder's
`plan.jsonl` entry (what the manifest asked for at the last run) read together with the
job's ledger record (what happened):

- `state` is the record's, never re-derived: the ledger's `apply` already says what a state
  means (a lost POST is SUBMITTED, a timed-out job stays in flight with `unfollowed`).
- `model`, `params`, `prompt` and `seconds` describe what ran (the record's last intent), else what
  is planned.
- `next_action` and `next_reason` are what the next `run` does with the job
  (`runner.batch.resume.decide`); None for a ledger job no longer in the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.batch import Action, Decision, decide
from runner.domain import JobState
from runner.ledger import AssetRecord, JobRecord
from runner.outdir import PlannedJob
from runner.schemas import SchemaRegistry
from runner.views.plan_summary import video_seconds

LEFT_ALONE = "no longer in the manifest: left alone"


@dataclass(frozen=True, slots=True)
class JobView:
    """One job as `status`, `report` and the run's summary show it.

    `cost` is the total over attempts; `seconds` the video asked for (None when only the
    API knows, e.g. a motion-control job as long as its driving video); `unfollowed` that
    the last run stopped following a job still at the API (timed out, or not askable).
    """

    id: str
    model: str | None
    state: JobState
    job_id: str | None
    assets: tuple[AssetRecord, ...]
    error: str | None
    hint: str | None
    attempt: int
    cost: float
    prompt: str | None
    seconds: int | None
    unfollowed: bool
    next_action: Action | None
    next_reason: str
    params: Mapping[str, Any] = field(default_factory=dict)  # what ran, else what is planned

    @property
    def planned(self) -> bool:
        """True when the job is in the plan (the manifest at the last run)."""
        return self.next_action is not None


def job_view(
    job_id: str,
    planned: PlannedJob | None,
    record: JobRecord | None,
    decision: Decision | None,
    registry: SchemaRegistry | None = None,
) -> JobView:
    """The view of one job from its plan entry (None: no longer planned), its record (None:
    never in the ledger) and the next run's decision (None: left alone)."""
    rec = record or JobRecord(id=job_id)
    model = rec.model or (planned.model if planned else None)
    params: Mapping[str, Any] = (
        rec.params if rec.params is not None else (planned.params if planned else {})
    )
    prompt = params.get("prompt")
    return JobView(
        id=job_id, model=model, state=rec.state, job_id=rec.job_id, assets=rec.assets,
        error=rec.error, hint=rec.hint, attempt=rec.attempt, cost=rec.total_cost,
        prompt=None if prompt is None else str(prompt),
        seconds=video_seconds(model, params, registry), unfollowed=rec.unfollowed,
        next_action=decision.action if decision else None,
        next_reason=decision.reason if decision else LEFT_ALONE, params=params,
    )  # fmt: skip


def files_present(directory: Path, record: JobRecord | None) -> bool:
    """The record's files exist with their recorded sizes (cheap: `run` re-hashes them
    before it skips a job). False for a job the ledger does not know."""
    if record is None:
        return False
    for asset in record.assets:
        path = directory / asset.path
        if not path.is_file() or path.stat().st_size != asset.bytes:
            return False
    return True


def job_views(
    directory: Path,
    plan: Iterable[PlannedJob],
    records: Mapping[str, JobRecord],
    registry: SchemaRegistry | None = None,
    *,
    present: Callable[[JobRecord | None], bool] | None = None,
) -> list[JobView]:
    """A view per planned job (plan order), then per ledger job no longer in the plan.

    Reads nothing but the sizes of the recorded files under `directory` (for the next
    action: a succeeded job whose file is gone is downloaded again); `present` replaces
    that check where the files live elsewhere (an object store's listing).
    """
    present = present or (lambda record: files_present(directory, record))
    views: list[JobView] = []
    seen: set[str] = set()
    for job in plan:
        seen.add(job.id)
        record = records.get(job.id)
        decision = decide(job.model, job.params, record,
                          files_ok=present(record))  # fmt: skip
        views.append(job_view(job.id, job, record, decision, registry))
    views.extend(
        job_view(job_id, None, record, None, registry)
        for job_id, record in records.items()
        if job_id not in seen
    )
    return views


def state_counts(views: Iterable[JobView]) -> dict[str, int]:
    """How many jobs are in each state: every state listed (in `JobState` order), zeros
    included. The one state counter of `status`, `report` and the run's summary."""
    counts = {state.value: 0 for state in JobState}
    for view in views:
        counts[view.state.value] += 1
    return counts
