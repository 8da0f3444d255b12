"""The results ledger: an append-only JSONL file, and its replay into job states.

Every line is one event: `ts` (ISO 8601 UTC), `job` (the manifest job id), `event`, and the
event's fields. Lines are never rewritten. A crash mid-write can leave a torn last line; the
reader skips lines that do not parse, and the writer first terminates a torn tail with a
newline so that new events never glue onto it.

Events (fields beyond ts/job/event):

- `intent` (attempt, model, params, body, fingerprint): about to POST; durable *before* the
  request leaves, so a crash after sending is always reconcilable.
- `submitted` (jobId, model, attempt, cost, reconciled): the API created the job, or
  reconciliation adopted one it had created.
- `unknown` (attempt, error): the POST's fate is unknown; reconcile before posting again.
- `rejected` (attempt, error, status): the API refused the body (4xx); nothing created or
  billed; the job counts as failed.
- `not-submitted` (attempt, error): the POST was answered "not now" (auth, credit, halt):
  nothing created; the job is pending again.
- `running` (jobId, status): the job left the queue.
- `succeeded` / `failed` / `canceled` (jobId, status, error, hint, assetIds, cost): the
  remote terminal state.
- `timed-out` (jobId, error): no terminal state within the job deadline; polled on resume.
- `downloaded` (assetId, path, sha256, bytes): a verified file is in place (path relative
  to the output folder).
- `download-failed` (assetId, error): the file could not be fetched this time.

`replay` folds the events into one `JobRecord` per job: a pure function, used by resume,
`status` and `report` alike. The `Ledger` protocol is the seam for other stores (a shared
PostgreSQL ledger is planned): append an event durably, read the events back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import anyio

from runner.domain import JobState
from runner.errors import LedgerWriteError

LEDGER_NAME = "ledger.jsonl"


def utc_now_iso() -> str:
    """The current time as ISO 8601 UTC with milliseconds, as the ledger writes it."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_event(job: str, event: str, ts: str | None = None, **fields: Any) -> dict[str, Any]:
    """One ledger line as a dict: `ts`, `job`, `event` first, then the fields (None dropped)."""
    record: dict[str, Any] = {"ts": ts or utc_now_iso(), "job": job, "event": event}
    record.update({k: v for k, v in fields.items() if v is not None})
    return record


class Ledger(Protocol):
    """Where events go. `append_many` returns only once the events are durable."""

    async def append_many(self, events: list[dict[str, Any]]) -> None: ...

    def read_events(self) -> Iterator[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """A file a job produced, once it is downloaded and verified."""

    asset_id: str
    path: str
    sha256: str
    bytes: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """Everything the ledger knows about one manifest job."""

    id: str
    state: JobState = JobState.PENDING
    model: str | None = None
    params: Mapping[str, Any] | None = None
    body: Mapping[str, Any] | None = None
    fingerprint: str | None = None
    attempt: int = 0
    job_id: str | None = None
    intent_ts: str | None = None
    unresolved_intent: bool = False  # an intent (or unknown POST) without a jobId yet
    remote_status: str | None = None
    asset_ids: tuple[str, ...] = ()
    assets: tuple[AssetRecord, ...] = ()
    error: str | None = None
    hint: str | None = None
    cost: float | None = None
    total_cost: float = 0.0
    reconciled: bool = False
    timed_out: bool = False
    previous_job_ids: tuple[str, ...] = field(default_factory=tuple)

    @property
    def all_downloaded(self) -> bool:
        """True when every produced asset has a verified file."""
        have = {a.asset_id for a in self.assets}
        # A success without any asset produced nothing to keep: not done.
        return (self.state is JobState.SUCCEEDED and bool(self.asset_ids)
                and all(a in have for a in self.asset_ids))


def _on_intent(rec: JobRecord, ev: Mapping[str, Any]) -> JobRecord:
    previous = rec.previous_job_ids + ((rec.job_id,) if rec.job_id else ())
    return replace(
        rec, state=JobState.PENDING, model=ev.get("model"), params=ev.get("params"),
        body=ev.get("body"), fingerprint=ev.get("fingerprint"), attempt=int(ev.get("attempt", 1)),
        job_id=None, intent_ts=ev.get("ts"), unresolved_intent=True, remote_status=None,
        asset_ids=(), assets=(), error=None, hint=None, cost=None, reconciled=False,
        timed_out=False, previous_job_ids=previous,
    )


def _on_submitted(rec: JobRecord, ev: Mapping[str, Any]) -> JobRecord:
    cost = ev.get("cost")
    return replace(
        rec, state=JobState.SUBMITTED, job_id=ev.get("jobId"), model=ev.get("model", rec.model),
        unresolved_intent=False, cost=cost, reconciled=bool(ev.get("reconciled")),
        total_cost=rec.total_cost + (float(cost) if cost is not None else 0.0),
    )


def _on_terminal(rec: JobRecord, ev: Mapping[str, Any]) -> JobRecord:
    state = {"succeeded": JobState.SUCCEEDED, "failed": JobState.FAILED}.get(
        ev["event"], JobState.CANCELED
    )
    return replace(
        rec, state=state, job_id=ev.get("jobId", rec.job_id), remote_status=ev.get("status"),
        error=ev.get("error"), hint=ev.get("hint"),
        asset_ids=tuple(ev.get("assetIds") or ()), timed_out=False,
    )


def _on_downloaded(rec: JobRecord, ev: Mapping[str, Any]) -> JobRecord:
    asset = AssetRecord(ev["assetId"], ev["path"], ev["sha256"], int(ev["bytes"]))
    kept = tuple(a for a in rec.assets if a.asset_id != asset.asset_id)
    return replace(rec, assets=(*kept, asset))


def _on_running(rec: JobRecord, ev: Mapping[str, Any]) -> JobRecord:
    if rec.state is not JobState.SUBMITTED:
        return rec
    return replace(rec, state=JobState.RUNNING, remote_status=ev.get("status"))


_HANDLERS: dict[str, Callable[[JobRecord, Mapping[str, Any]], JobRecord]] = {
    "intent": _on_intent,
    "submitted": _on_submitted,
    "succeeded": _on_terminal,
    "failed": _on_terminal,
    "canceled": _on_terminal,
    "downloaded": _on_downloaded,
    "running": _on_running,
    "unknown": lambda r, e: replace(r, unresolved_intent=True, error=e.get("error")),
    "not-submitted": lambda r, e: replace(r, unresolved_intent=False, error=e.get("error")),
    "rejected": lambda r, e: replace(
        r, state=JobState.FAILED, unresolved_intent=False, error=e.get("error"),
        remote_status=e.get("status"),
    ),
    "timed-out": lambda r, e: replace(r, timed_out=True, error=e.get("error")),
    "download-failed": lambda r, e: replace(
        r, error=e.get("error"), assets=tuple(a for a in r.assets if a.asset_id != e.get("assetId"))
    ),
}


def replay(events: Iterable[Mapping[str, Any]]) -> dict[str, JobRecord]:
    """Fold ledger events, in file order, into one record per job id (insertion ordered)."""
    records: dict[str, JobRecord] = {}
    for ev in events:
        job = ev.get("job")
        if not isinstance(job, str):
            continue
        handler = _HANDLERS.get(str(ev.get("event")))
        if handler is None:
            continue  # an event this version does not know: newer writers may add some
        records[job] = handler(records.get(job) or JobRecord(id=job), ev)
    return records


def parse_lines(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Decode ledger lines, skipping the ones a crash tore (or anything not a JSON object)."""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(obj, dict):
            yield obj


def encode_event(event: Mapping[str, Any]) -> bytes:
    """One compact JSON line, UTF-8, newline-terminated."""
    return (json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class JsonlLedger:
    """The ledger as `DIR/ledger.jsonl`: append, flush and fsync; never rewrite.

    `write_batch` is synchronous and short (one `write` and one `fsync` per batch);
    `LedgerWriter` runs it off the event loop and batches concurrent events into one fsync.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / LEDGER_NAME
        self._fd: int | None = None

    def read_events(self) -> Iterator[dict[str, Any]]:
        """The events in file order, streamed: replaying a large ledger holds only the
        records it builds, not every event at once."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            yield from parse_lines(fh)

    def write_batch(self, events: list[dict[str, Any]]) -> None:
        """Append `events` durably (flush + fsync) in one write."""
        data = b"".join(encode_event(e) for e in events)
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            if _has_torn_tail(self._fd):
                data = b"\n" + data  # close the torn line so ours stand alone
        os.write(self._fd, data)
        os.fsync(self._fd)

    async def append_many(self, events: list[dict[str, Any]]) -> None:
        await anyio.to_thread.run_sync(self.write_batch, events)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _has_torn_tail(fd: int) -> bool:
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    return os.pread(fd, 1, size - 1) != b"\n"


class LedgerWriter:
    """The one writer task of a ledger: events arrive through a stream, each batch is one fsync.

    `append` returns once the event is durable, so a caller that must not act before its
    record is safe (the intent before a POST, the jobId before anything else) just awaits it.
    """

    def __init__(self, ledger: Ledger, *, buffer: int = 1024) -> None:
        self._ledger = ledger
        self._failure: OSError | None = None
        self._send, self._receive = anyio.create_memory_object_stream[
            tuple[dict[str, Any], anyio.Event]
        ](buffer)

    async def append(self, event: dict[str, Any]) -> None:
        """Queue `event` for the writer and wait until it is on disk.

        Raises LedgerWriteError once a write has failed: nothing may act on a record that
        is not durable.
        """
        self._raise_if_failed()
        done = anyio.Event()
        await self._send.send((event, done))
        await done.wait()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            raise LedgerWriteError(
                f"the ledger could not be written ({self._failure}); the run stopped",
                hint="free disk space or fix the folder's permissions, then run the same "
                "command to resume",
            ) from self._failure

    def close(self) -> None:
        """No more events: the writer finishes what it has and returns."""
        self._send.close()

    async def run(self) -> None:
        """Write events until `close` is called; run it in the batch's task group.

        Shielded: a cancelled batch still has tasks finishing shielded work (a POST whose
        jobId must be recorded); the writer serves them until `close`.
        """
        with anyio.CancelScope(shield=True):
            await self._serve()

    async def _serve(self) -> None:
        async with self._receive:
            async for first in self._receive:
                batch = [first]
                while True:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                if self._failure is None:
                    try:
                        await self._ledger.append_many([e for e, _ in batch])
                    except OSError as exc:
                        # Wake every waiter with the error rather than leave them hanging.
                        self._failure = exc
                for _, done in batch:
                    done.set()
