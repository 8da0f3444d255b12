"""`cancel`: ask the API to cancel a run's in-flight jobs, and record what it cancelled.

The API cancels only some job types ("today only cancel on inference jobs is supported"),
so each refusal is an outcome with the API's reason, not an error. When no run holds the
folder the cancellations are recorded in its ledger at once; when a run is going, its own
following records them (a ledger has one writer), and cancel only asks the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from runner.api import Credentials, ScenarioClient
from runner.batch.control import halt_reason_for
from runner.domain import JobState, RemoteJob, RemoteStatus
from runner.errors import ApiError, LockedError
from runner.ledger import Event, Finished, JsonlLedger, Outcome
from runner.outdir import hold_lock, writing

_IN_FLIGHT = (JobState.SUBMITTED, JobState.RUNNING)


@dataclass(frozen=True, slots=True)
class Targets:
    """What a cancel can ask for: (manifest job, jobId) pairs, and the jobs in flight whose
    POST's answer was lost (no jobId to cancel until a run reconciles them)."""

    jobs: tuple[tuple[str, str], ...]
    without_job_id: tuple[str, ...]


class CancelView(Protocol):
    """What `cancel_targets` reads of a job (`runner.views.JobView` has it), so that batch/
    need not import the views, which import batch/."""

    @property
    def id(self) -> str: ...
    @property
    def state(self) -> JobState: ...
    @property
    def job_id(self) -> str | None: ...


def cancel_targets(views: Iterable[CancelView]) -> Targets:
    """The in-flight jobs of a run, as `cancel` sees them."""
    in_flight = [v for v in views if v.state in _IN_FLIGHT]
    return Targets(
        tuple((v.id, v.job_id) for v in in_flight if v.job_id),
        tuple(v.id for v in in_flight if not v.job_id),
    )


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What the API said to one cancel request."""

    job: str
    job_id: str
    result: RemoteJob | None
    refusal: str | None


async def cancel_jobs(
    base_url: str, credentials: Credentials, targets: Sequence[tuple[str, str]]
) -> list[CancelOutcome]:
    """POST a cancel for each (manifest job, jobId); refusals are outcomes. Auth and credit
    failures propagate: every other request would fail the same way."""
    outcomes: list[CancelOutcome] = []
    async with aiohttp.ClientSession() as session:
        client = ScenarioClient(session, base_url, credentials)
        for job, job_id in targets:
            try:
                result = await client.cancel_job(job_id)
            except ApiError as exc:
                if halt_reason_for(exc) is not None:
                    raise
                outcomes.append(CancelOutcome(job, job_id, None, str(exc)))
                continue
            outcomes.append(CancelOutcome(job, job_id, result, None))
    return outcomes


def cancellation_events(outcomes: Iterable[CancelOutcome]) -> list[Event]:
    """A `canceled` event for each job the API reports canceled."""
    return [
        Finished(job=o.job, outcome=Outcome.CANCELED, job_id=o.job_id,
                 status=o.result.raw_status)
        for o in outcomes
        if o.result is not None and o.result.status is RemoteStatus.CANCELED
    ]


def record_cancellations(directory: Path, outcomes: Iterable[CancelOutcome]) -> bool:
    """Write the cancellations into the folder's ledger; False (nothing written) when a
    run holds the folder — its own following records them. FolderError when the folder
    cannot be written."""
    events = cancellation_events(outcomes)
    try:
        with hold_lock(directory), writing(directory):
            ledger = JsonlLedger(directory)
            try:
                if events:
                    ledger.write_batch(events)
            finally:
                ledger.close()
    except LockedError:
        return False
    return True
