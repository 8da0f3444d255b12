"""The ledger's events: one frozen dataclass per kind, (de)serialized here and nowhere else.

A line on disk is a JSON object with `ts` (ISO 8601 UTC), `job` (the manifest job id),
`event` (the kind) and the kind's fields, under the names product.md gives (`jobId`,
`assetId`, …); None fields are left out. `to_line` and `from_line` are the only places that
know those spellings. A line of a kind this version does not know, or whose fields do not
parse, is skipped by `from_line` (a newer writer may add kinds; a torn line is not an event).

Kinds, in the order a job usually meets them:

- `intent` (attempt, model, params, body, fingerprint, inputs): about to POST; durable
  *before* the request leaves, so a crash after sending is always reconcilable. `inputs`:
  each local file (`field`, `path` as written, `sha256`, `assetId`).
- `submitted` (jobId, model, attempt, cost, reconciled): the API created the job, or
  reconciliation adopted one it had created.
- `unknown` (attempt, error): the POST's fate is unknown; reconcile before posting again.
- `rejected` (attempt, error, status): the API refused the body (4xx); nothing created or
  billed; the job counts as failed.
- `not-submitted` (attempt, error): nothing was created (auth, credit, halt, a re-post
  given up): the job is pending again.
- `running` (jobId, status): the job left the queue.
- `succeeded` / `failed` / `canceled` (jobId, status, error, hint, assetIds, seconds): the
  remote terminal state; `seconds` is how long the job took by the server's clock.
- `timed-out` (jobId, error): no terminal state within `--job-timeout`; still in flight at
  the API, no longer followed by this run; the next run polls it again.
- `poll-failed` (jobId, error): the API could not be asked about the job (after the client's
  retries); the same consequences as `timed-out`, a different cause.
- `lost` (jobId, error, hint): the API kept answering 404 for the jobId past the grace
  (`--lost-grace`): the job is failed, and `--retry-failed` posts it again.
- `downloaded` (assetId, path, sha256, bytes): a verified file is in place (path relative
  to the output folder).
- `download-failed` (assetId, error): the file could not be fetched this time.
- `superseded` (assetId, path, previous, sha256, bytes, attempt): a new attempt will
  replace the video of `attempt`: it is kept at `path`, moved from `previous` after this.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from runner.clock import REAL_CLOCK


def _now() -> str:
    return REAL_CLOCK.now_iso()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Event:
    job: str
    ts: str = field(default_factory=_now)
    KIND: ClassVar[str] = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Intended(_Event):
    """About to POST this body for this attempt."""

    attempt: int
    model: str | None = None
    params: Mapping[str, Any] | None = None
    body: Mapping[str, Any] | None = None
    fingerprint: str | None = None
    inputs: tuple[Mapping[str, str], ...] = ()
    KIND: ClassVar[str] = "intent"


@dataclass(frozen=True, slots=True, kw_only=True)
class Submitted(_Event):
    """The API created the job (or reconciliation adopted the one it had created)."""

    job_id: str | None
    model: str | None = None
    attempt: int
    cost: float | None = None
    reconciled: bool = False
    KIND: ClassVar[str] = "submitted"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutcomeLost(_Event):
    """The POST may or may not have created a job."""

    attempt: int
    error: str | None = None
    KIND: ClassVar[str] = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected(_Event):
    """The API refused the request for good: nothing created, the job failed."""

    attempt: int
    error: str | None = None
    status: str | None = None
    KIND: ClassVar[str] = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class NotSubmitted(_Event):
    """Nothing was created and the job is pending again."""

    attempt: int
    error: str | None = None
    KIND: ClassVar[str] = "not-submitted"


@dataclass(frozen=True, slots=True, kw_only=True)
class Running(_Event):
    job_id: str | None
    status: str | None = None
    KIND: ClassVar[str] = "running"


class Outcome(enum.Enum):
    """A job's remote terminal state, as the ledger names it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finished(_Event):
    """The job reached a terminal state at the API (`event` is the outcome's name)."""

    outcome: Outcome
    job_id: str | None
    status: str | None = None
    error: str | None = None
    hint: str | None = None
    asset_ids: tuple[str, ...] = ()
    seconds: float | None = None  # how long it ran, by the server's clock (for the cadence)
    KIND: ClassVar[str] = "finished"  # on disk: the outcome's name


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOut(_Event):
    job_id: str | None
    error: str | None = None
    KIND: ClassVar[str] = "timed-out"


@dataclass(frozen=True, slots=True, kw_only=True)
class PollFailed(_Event):
    job_id: str | None
    error: str | None = None
    KIND: ClassVar[str] = "poll-failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lost(_Event):
    """The API no longer knows the job: 404 for its jobId, again and again."""

    job_id: str | None
    error: str | None = None
    hint: str | None = None
    KIND: ClassVar[str] = "lost"


@dataclass(frozen=True, slots=True, kw_only=True)
class Downloaded(_Event):
    asset_id: str
    path: str
    sha256: str
    bytes: int
    KIND: ClassVar[str] = "downloaded"


@dataclass(frozen=True, slots=True, kw_only=True)
class DownloadFailed(_Event):
    asset_id: str
    error: str | None = None
    KIND: ClassVar[str] = "download-failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Superseded(_Event):
    """A paid video set aside (not deleted) because a new attempt will replace it."""

    asset_id: str
    path: str
    previous: str
    sha256: str
    bytes: int
    attempt: int
    KIND: ClassVar[str] = "superseded"


Event = (
    Intended | Submitted | OutcomeLost | Rejected | NotSubmitted | Running | Finished
    | TimedOut | PollFailed | Lost | Downloaded | DownloadFailed | Superseded
)

# Python attribute -> the field's name on disk (product.md's spelling).
_WIRE_NAMES = {"job_id": "jobId", "asset_id": "assetId", "asset_ids": "assetIds"}
_FROM_WIRE = {v: k for k, v in _WIRE_NAMES.items()}
_KINDS: dict[str, type[_Event]] = {
    cls.KIND: cls
    for cls in (Intended, Submitted, OutcomeLost, Rejected, NotSubmitted, Running, TimedOut,
                PollFailed, Lost, Downloaded, DownloadFailed, Superseded)
}
_FIELDS: dict[type[_Event], tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls) if f.name not in ("job", "ts"))
    for cls in (*_KINDS.values(), Finished)
}


def kind_of(event: Event) -> str:
    """The `event` value on disk."""
    return event.outcome.value if isinstance(event, Finished) else event.KIND


def to_line(event: Event) -> dict[str, Any]:
    """The event as a ledger line: `ts`, `job`, `event` first, then its fields (None,
    False and empty ones left out)."""
    line: dict[str, Any] = {"ts": event.ts, "job": event.job, "event": kind_of(event)}
    for name in _FIELDS[type(event)]:
        if name == "outcome":
            continue
        value = getattr(event, name)
        if value is None or value is False or value == ():
            continue
        line[_WIRE_NAMES.get(name, name)] = list(value) if isinstance(value, tuple) else value
    return line


def from_line(line: object) -> Event | None:
    """The event a ledger line holds; None for an unknown kind, fields that do not parse, or
    anything that is not a JSON object at all."""
    if not isinstance(line, Mapping):
        return None
    job, kind, ts = line.get("job"), line.get("event"), line.get("ts")
    if not isinstance(job, str) or not isinstance(kind, str):
        return None
    values: dict[str, Any] = {"job": job, "ts": ts if isinstance(ts, str) else ""}
    if kind in _OUTCOMES:
        cls: type[_Event] = Finished
        values["outcome"] = _OUTCOMES[kind]
    elif kind in _KINDS:
        cls = _KINDS[kind]
    else:
        return None
    names = _FIELDS[cls]
    for key, value in line.items():
        name = _FROM_WIRE.get(key, key)
        if name in names and name != "outcome":
            values[name] = value
    try:
        return _coerce(cls, values)
    except (TypeError, ValueError):
        return None


_OUTCOMES = {o.value: o for o in Outcome}


def _coerce(cls: type[_Event], values: dict[str, Any]) -> Event:
    """Types as the dataclass declares them, from JSON's (a hand-edited line may differ)."""
    if "attempt" in _FIELDS[cls]:
        values["attempt"] = int(values.get("attempt", 1))
    for name, convert in _CONVERT.items():
        if name in values:
            values[name] = convert(values[name])
    if "job_id" in _FIELDS[cls] and values.get("job_id") is None:
        if cls is Submitted:
            # A job "created" without a jobId could be neither polled nor reconciled: the
            # intent before it stays unresolved, so the next run looks for the job.
            raise ValueError("submitted without a jobId")
        values["job_id"] = None
    event: Event = cls(**values)  # type: ignore[assignment]
    return event


def _asset_ids(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # not a list: it would split into one "id" per letter
        raise ValueError("assetIds is not a list")
    return tuple(str(a) for a in value or ())


def _inputs(value: Any) -> tuple[Mapping[str, str], ...]:
    # Never a reason to drop an intent (its POST must stay reconcilable): what does not
    # parse is left out.
    return tuple(
        {str(k): str(v) for k, v in item.items()} for item in value
        if isinstance(item, Mapping) and all(isinstance(v, str) for v in item.values())
    ) if isinstance(value, list) else ()


def _status(value: Any) -> Any:
    # 0.1 wrote a rejection's HTTP status as a number; the event declares text.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


# field -> JSON value as the dataclass declares it
_CONVERT: dict[str, Callable[[Any], Any]] = {
    "asset_ids": _asset_ids, "inputs": _inputs, "status": _status, "bytes": int,
    "cost": _number, "seconds": _number, "reconciled": bool,
}
