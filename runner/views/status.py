"""The state of every job of a run, from its output folder: pure assembly for `status`.

The folder's `plan.jsonl` (the manifest's jobs at the last run) and `ledger.jsonl` (what
happened) together speak of every job, including the ones never submitted. Each row also
says what the next `run` will do with the job and why.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.batch.resume import decide
from runner.domain import JobState
from runner.ledger.journal import AssetRecord, JobRecord
from runner.outdir.files import PlannedJob


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One job as `status` shows it."""

    id: str
    model: str | None
    state: JobState
    job_id: str | None
    assets: tuple[AssetRecord, ...]
    error: str | None
    next_run: str
    attempt: int
    cost: float

    def as_json(self) -> dict[str, Any]:
        """The `status --json` object (product.md) plus `next`, `attempt` and `cost`."""
        return {
            "id": self.id,
            "model": self.model,
            "state": self.state.value,
            "jobId": self.job_id,
            "assets": [
                {"assetId": a.asset_id, "path": a.path, "sha256": a.sha256, "bytes": a.bytes}
                for a in self.assets
            ],
            "error": self.error,
            "next": self.next_run,
            "attempt": self.attempt,
            "cost": self.cost,
        }


def _files_present(directory: Path, record: JobRecord) -> bool:
    # Cheap for status: existence and size. `run` re-hashes before it skips a job.
    for asset in record.assets:
        path = directory / asset.path
        if not path.is_file() or path.stat().st_size != asset.bytes:
            return False
    return True


def status_rows(
    directory: Path, plan: Iterable[PlannedJob], records: Mapping[str, JobRecord]
) -> list[StatusRow]:
    """A row per planned job, then per ledger job no longer in the plan."""
    rows: list[StatusRow] = []
    seen: set[str] = set()
    for job in plan:
        seen.add(job.id)
        rows.append(_row(directory, job.id, job.model, job.params, records.get(job.id)))
    for job_id, record in records.items():
        if job_id not in seen:
            row = _row(directory, job_id, record.model, record.params or {}, record)
            rows.append(_with_next(row, "no longer in the manifest: left alone"))
    return rows


def _with_next(row: StatusRow, text: str) -> StatusRow:
    return StatusRow(row.id, row.model, row.state, row.job_id, row.assets, row.error, text,
                     row.attempt, row.cost)


def _row(
    directory: Path, job_id: str, model: str | None, params: Mapping[str, Any],
    record: JobRecord | None,
) -> StatusRow:
    files_ok = record is not None and _files_present(directory, record)
    decision = decide(model or "", params, record, files_ok=files_ok)
    if record is None:
        return StatusRow(job_id, model, JobState.PENDING, None, (), None, decision.reason, 0, 0.0)
    # A POST whose answer was lost may have created a job: it counts as submitted.
    state = JobState.SUBMITTED if record.unresolved_intent else record.state
    return StatusRow(
        job_id, model or record.model, state, record.job_id, record.assets,
        record.error, decision.reason, record.attempt, record.total_cost,
    )


def state_counts(rows: Iterable[StatusRow]) -> dict[str, int]:
    """How many jobs are in each state (every state listed, zeros included)."""
    counts = {state.value: 0 for state in JobState}
    for row in rows:
        counts[row.state.value] += 1
    return counts
