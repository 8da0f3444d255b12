"""One job's record, and the one transition that moves it: `apply(record, event)`.

Replay (resume, `status`, `report`) and the live run use the same `apply`, so a job's state
means the same thing everywhere. States are product.md's six; two facts sit beside them:

- A POST whose answer has not arrived (`intent`, then `unknown` if it was lost) is
  SUBMITTED with no jobId and `unresolved_intent`: it may have created a paid job, and the
  next run looks for that job before posting anything (it is never "pending").
- A job past `--job-timeout` (`timed-out`), or that the API could not be asked about
  (`poll-failed`), stays SUBMITTED/RUNNING — it is at the API and may still finish — with
  `unfollowed` set: this run stopped following it, it is not a failure, and the next run
  polls it again.
- A job the API no longer knows (`lost`: 404 past the grace) is FAILED with `lost` set: it
  will not finish, and only `--retry-failed` posts it again.
- A video a new attempt replaces (`superseded`) leaves `assets` for `superseded`: the paid
  file is kept elsewhere in the folder and the ledger says where.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runner.domain import JobState
from runner.ledger.events import (
    Downloaded,
    DownloadFailed,
    Event,
    Finished,
    Intended,
    Lost,
    NotSubmitted,
    Outcome,
    OutcomeLost,
    PollFailed,
    Rejected,
    Running,
    Submitted,
    Superseded,
    TimedOut,
)


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """A file a job produced, once it is downloaded and verified."""

    asset_id: str
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True)
class SupersededFile:
    """A video of an earlier attempt, kept at `path` (it was at `previous`)."""

    asset_id: str
    path: str
    previous: str
    sha256: str
    bytes: int
    attempt: int


@dataclass(frozen=True, slots=True)
class InputFile:
    """A local file a job's last attempt sent: its field, path as written, content hash and
    the asset id it was uploaded as."""

    field: str
    path: str
    sha256: str
    asset_id: str | None = None


def _input_files(items: tuple[Mapping[str, str], ...]) -> tuple[InputFile, ...]:
    return tuple(
        InputFile(i["field"], i.get("path", ""), i["sha256"], i.get("assetId"))
        for i in items if "field" in i and "sha256" in i
    )


@dataclass(frozen=True, slots=True)
class JobRecord:
    """Everything the ledger knows about one manifest job."""

    id: str
    state: JobState = JobState.PENDING
    model: str | None = None
    params: Mapping[str, Any] | None = None
    body: Mapping[str, Any] | None = None
    fingerprint: str | None = None
    inputs: tuple[InputFile, ...] = ()  # the last intent's local files (none before 0.2)
    attempt: int = 0
    job_id: str | None = None
    intent_ts: str | None = None
    submitted_ts: str | None = None
    finished_ts: str | None = None
    unresolved_intent: bool = False  # an intent (or unknown POST) without a jobId yet
    remote_status: str | None = None
    asset_ids: tuple[str, ...] = ()
    assets: tuple[AssetRecord, ...] = ()
    error: str | None = None
    hint: str | None = None
    cost: float | None = None
    total_cost: float = 0.0
    reconciled: bool = False
    run_seconds: float | None = None  # how long the last attempt ran, by the server's clock
    timed_out: bool = False
    poll_failed: bool = False
    lost: bool = False  # the API answered 404 for the jobId past the grace
    previous_job_ids: tuple[str, ...] = field(default_factory=tuple)
    superseded: tuple[SupersededFile, ...] = ()  # earlier attempts' videos, kept

    @property
    def unfollowed(self) -> bool:
        """At the API, but the last run stopped following it (timed out, or not askable)."""
        return self.timed_out or self.poll_failed

    @property
    def in_flight(self) -> bool:
        """Submitted (or maybe submitted) and not terminal."""
        return self.state in (JobState.SUBMITTED, JobState.RUNNING)

    @property
    def all_downloaded(self) -> bool:
        """True when every produced asset has a verified file."""
        have = {a.asset_id for a in self.assets}
        # A success without any asset produced nothing to keep: not done.
        return (self.state is JobState.SUCCEEDED and bool(self.asset_ids)
                and all(a in have for a in self.asset_ids))


def _intended(rec: JobRecord, ev: Intended) -> JobRecord:
    previous = rec.previous_job_ids + ((rec.job_id,) if rec.job_id else ())
    return replace(
        rec, state=JobState.SUBMITTED, model=ev.model, params=ev.params, body=ev.body,
        fingerprint=ev.fingerprint, inputs=_input_files(ev.inputs), attempt=ev.attempt,
        job_id=None, intent_ts=ev.ts, submitted_ts=None, finished_ts=None, run_seconds=None,
        unresolved_intent=True, remote_status=None,
        asset_ids=(), assets=(), error=None, hint=None, cost=None, reconciled=False,
        timed_out=False, poll_failed=False, lost=False, previous_job_ids=previous,
    )


def _submitted(rec: JobRecord, ev: Submitted) -> JobRecord:
    return replace(
        rec, state=JobState.SUBMITTED, job_id=ev.job_id, model=ev.model or rec.model,
        submitted_ts=ev.ts, unresolved_intent=False, cost=ev.cost, reconciled=ev.reconciled,
        total_cost=rec.total_cost + (ev.cost or 0.0), error=None,
    )


_OUTCOME_STATES = {
    Outcome.SUCCEEDED: JobState.SUCCEEDED,
    Outcome.FAILED: JobState.FAILED,
    Outcome.CANCELED: JobState.CANCELED,
}


def _finished(rec: JobRecord, ev: Finished) -> JobRecord:
    return replace(
        rec, state=_OUTCOME_STATES[ev.outcome], job_id=ev.job_id or rec.job_id,
        remote_status=ev.status, error=ev.error, hint=ev.hint, asset_ids=ev.asset_ids,
        finished_ts=ev.ts, unresolved_intent=False, timed_out=False, poll_failed=False,
        run_seconds=ev.seconds,
        lost=False,
    )


def _lost_by_api(rec: JobRecord, ev: Lost) -> JobRecord:
    return replace(
        rec, state=JobState.FAILED, job_id=ev.job_id or rec.job_id, error=ev.error,
        hint=ev.hint, finished_ts=ev.ts, unresolved_intent=False, timed_out=False,
        poll_failed=False, lost=True,
    )


def _running(rec: JobRecord, ev: Running) -> JobRecord:
    if rec.state is not JobState.SUBMITTED or rec.unresolved_intent:
        return rec
    return replace(rec, state=JobState.RUNNING, remote_status=ev.status)


def _downloaded(rec: JobRecord, ev: Downloaded) -> JobRecord:
    asset = AssetRecord(ev.asset_id, ev.path, ev.sha256, ev.bytes)
    kept = tuple(a for a in rec.assets if a.asset_id != asset.asset_id)
    return replace(rec, assets=(*kept, asset), error=None)


def _superseded(rec: JobRecord, ev: Superseded) -> JobRecord:
    kept = SupersededFile(ev.asset_id, ev.path, ev.previous, ev.sha256, ev.bytes, ev.attempt)
    return replace(
        rec, assets=tuple(a for a in rec.assets if a.path != ev.previous),
        superseded=(*(s for s in rec.superseded if s.path != ev.path), kept),
    )


def _download_failed(rec: JobRecord, ev: DownloadFailed) -> JobRecord:
    kept = tuple(a for a in rec.assets if a.asset_id != ev.asset_id)
    return replace(rec, error=ev.error, assets=kept)


def _lost(rec: JobRecord, ev: OutcomeLost) -> JobRecord:
    return replace(rec, state=JobState.SUBMITTED, unresolved_intent=True, error=ev.error)


def _not_submitted(rec: JobRecord, ev: NotSubmitted) -> JobRecord:
    state = JobState.PENDING if rec.job_id is None else rec.state
    return replace(rec, state=state, unresolved_intent=False, error=ev.error)


def _rejected(rec: JobRecord, ev: Rejected) -> JobRecord:
    return replace(rec, state=JobState.FAILED, unresolved_intent=False, error=ev.error,
                   remote_status=ev.status, finished_ts=ev.ts)


def _timed_out(rec: JobRecord, ev: TimedOut) -> JobRecord:
    return replace(rec, timed_out=True, error=ev.error)


def _poll_failed(rec: JobRecord, ev: PollFailed) -> JobRecord:
    return replace(rec, poll_failed=True, error=ev.error)


_TRANSITIONS: dict[type[Any], Callable[[JobRecord, Any], JobRecord]] = {
    Intended: _intended,
    Submitted: _submitted,
    OutcomeLost: _lost,
    Rejected: _rejected,
    NotSubmitted: _not_submitted,
    Running: _running,
    Finished: _finished,
    TimedOut: _timed_out,
    PollFailed: _poll_failed,
    Lost: _lost_by_api,
    Downloaded: _downloaded,
    DownloadFailed: _download_failed,
    Superseded: _superseded,
}


def apply(record: JobRecord | None, event: Event) -> JobRecord:
    """The job's record after `event` (a new record for a job the ledger did not know)."""
    return _TRANSITIONS[type(event)](record or JobRecord(id=event.job), event)


def replay(events: Iterable[Event]) -> dict[str, JobRecord]:
    """Fold events, in ledger order, into one record per job id (insertion ordered)."""
    records: dict[str, JobRecord] = {}
    for event in events:
        records[event.job] = apply(records.get(event.job), event)
    return records
