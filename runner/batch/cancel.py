"""`cancel`: ask the API to cancel a run's in-flight jobs (all, or those named), cancel the
named jobs not yet submitted, and record what it cancelled.

The API cancels only some job types ("today only cancel on inference jobs is supported"),
so each refusal is an outcome with the API's reason, not an error. When no run holds the
folder the cancellations are recorded in its ledger at once; when a run is going, its own
following records them (a ledger has one writer), and cancel asks the API and tells the
run, which then submits none of the jobs named (`runner.batch.withdrawals`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp

from runner.api import Credentials, ScenarioClient
from runner.batch.control import halt_reason_for
from runner.batch.withdrawals import append_request, local_cancellation
from runner.domain import JobState, RemoteJob, RemoteStatus
from runner.errors import ApiError, LockedError
from runner.ledger import Event, Finished, JsonlLedger, Outcome
from runner.outdir import hold_lock, read_lock, writing

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


def cancel_pending(
    directory: Path, pending: Sequence[str], named: Sequence[str], asked: Sequence[str]
) -> bool:
    """Cancel jobs not yet submitted, and tell a live run which jobs are cancelled.

    With no run holding the folder: the `pending` jobs are recorded `canceled` in its
    ledger at once (True). With a run holding it: a request naming every `named` job (and
    the jobIds `asked` of the API) is appended for that run, which submits none of them
    and records the cancellations itself (False). See `runner.batch.withdrawals`.
    """
    if not pending:  # nothing to write unless a run holds the folder (it may be read-only)
        holder = read_lock(directory)
        if holder is None or holder.stale:
            return True
        with writing(directory):
            append_request(directory, named, asked)
        return False
    try:
        with hold_lock(directory), writing(directory):
            if pending:
                ledger = JsonlLedger(directory)
                try:
                    ledger.write_batch([local_cancellation(job) for job in pending])
                finally:
                    ledger.close()
    except LockedError:
        with writing(directory):
            append_request(directory, named, asked)
        return False
    return True


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
