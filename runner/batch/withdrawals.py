"""Cancelling some jobs of a batch, including while a run holds its folder.

A folder has one ledger writer: the run holding its lock. So `cancel` talks to a live run
through a file beside the ledger, `cancel-requests.jsonl`: one JSON line per request,
`{"ts", "jobs": [manifest job ids], "asked": [jobIds cancel asked the API to cancel]}`,
appended under an `flock` of that file. The run reads it before every generate POST (a
`stat`, then any new lines) and every quarter second, and for each job named:

- not submitted yet: never submitted by this run; recorded `canceled` (no jobId) by the task
  that holds the job, or when the run ends;
- its intent written but the POST not sent: the intent is closed (`not-submitted`, nothing
  was created) and the job recorded `canceled`;
- at the API with a jobId that `cancel` did not ask about (submitted meanwhile, or its POST
  answered after the request): the run asks the API to cancel it, and its following
  records the API's `canceled`;
- never retried automatically, never re-posted after a capacity refusal.

When the run ends it carries out what is left under the file's lock and empties it. A
request that no run lived to read (the run was killed) is carried out for the jobs still
pending by the next run, before it decides anything (`settle_leftovers`).

A canceled job is brought back like a failed one: `run --retry-failed` (with `--only ID`
for just that one).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio

from runner.clock import REAL_CLOCK
from runner.domain import JobState
from runner.errors import ApiError
from runner.ledger import Event, Finished, JobRecord, JsonlLedger, Outcome, apply

log = logging.getLogger(__name__)

REQUESTS_NAME = "cancel-requests.jsonl"
CANCELED_LOCALLY = "canceled before it was submitted (kling-batch cancel)"
# How often a live run looks for new requests between POSTs.
WATCH_INTERVAL = 0.25


def append_request(directory: Path, jobs: Iterable[str], asked: Iterable[str]) -> None:
    """Append one cancel request for the run holding `directory` (durable on return)."""
    line = json.dumps({"ts": REAL_CLOCK.now_iso(), "jobs": sorted(set(jobs)),
                       "asked": sorted(set(asked))}, separators=(",", ":")) + "\n"
    fd = os.open(directory / REQUESTS_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse(lines: Iterable[bytes]) -> tuple[set[str], set[str]]:
    jobs: set[str] = set()
    asked: set[str] = set()
    for raw in lines:
        try:
            data = json.loads(raw)
            jobs.update(str(j) for j in data.get("jobs", ()))
            asked.update(str(j) for j in data.get("asked", ()))
        except (ValueError, AttributeError, TypeError):
            continue  # a torn or foreign line is not a request
    return jobs, asked


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[int | None]:
    """The requests file, opened and flocked (None when there is none)."""
    try:
        fd = os.open(directory / REQUESTS_NAME, os.O_RDWR)
    except FileNotFoundError:
        yield None
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""


def local_cancellation(job: str) -> Finished:
    """The ledger's `canceled` for a job cancelled before it was submitted."""
    return Finished(job=job, outcome=Outcome.CANCELED, job_id=None, error=CANCELED_LOCALLY)


def _pending(record: JobRecord | None) -> bool:
    return record is None or (record.state is JobState.PENDING and not record.unresolved_intent)


def settle_leftovers(
    directory: Path, records: Mapping[str, JobRecord]
) -> dict[str, JobRecord]:
    """Carry out requests no run read (the run that held the folder was killed): the jobs
    still pending are recorded `canceled`; then the file is emptied. The records after it.
    Called with the folder's lock held, before anything is decided."""
    with _locked(directory) as fd:
        if fd is None:
            return dict(records)
        jobs, _asked = _parse(_read_all(fd).splitlines())
        events: list[Event] = [local_cancellation(job) for job in sorted(jobs)
                               if _pending(records.get(job))]
        updated = dict(records)
        if events:
            ledger = JsonlLedger(directory)
            try:
                ledger.write_batch(events)
            finally:
                ledger.close()
            for event in events:
                updated[event.job] = apply(updated.get(event.job), event)
        os.ftruncate(fd, 0)
        return updated


class Withdrawals:
    """The cancel requests a live run has seen, and what it does about them."""

    def __init__(
        self,
        directory: Path,
        *,
        state_of: Callable[[str], JobRecord | None],
        record: Callable[..., Awaitable[Any]],
        run_jobs: Collection[str],
        cancel_at_api: Callable[[str], Awaitable[Any]],
        note: Callable[[str], None],
    ) -> None:
        self._path = directory / REQUESTS_NAME
        self._directory = directory
        self._state_of = state_of
        self._record = record  # JobBook.record
        self._run_jobs = run_jobs
        self._cancel_at_api = cancel_at_api
        self._note = note
        self._offset = 0
        self._jobs: set[str] = set()
        self._asked: set[str] = set()
        self._recorded: set[str] = set()

    def refresh(self) -> set[str]:
        """Read the requests appended since the last look; the jobs newly named."""
        try:
            size = self._path.stat().st_size
        except FileNotFoundError:
            return set()
        if size <= self._offset:
            return set()
        with self._path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read(size - self._offset)
        complete = chunk.rpartition(b"\n")[0]
        if not complete:
            return set()
        self._offset += len(complete) + 1
        jobs, asked = _parse(complete.split(b"\n"))
        self._asked |= asked
        new = jobs - self._jobs
        self._jobs |= new
        return new

    def withdrawn(self, job: str) -> bool:
        """True when a cancel request names `job` (read from the file now)."""
        self.refresh()
        return job in self._jobs

    async def cancel_locally(self, job: str) -> None:
        """Record `canceled` for a job that was never submitted (once)."""
        if job in self._recorded:
            return
        self._recorded.add(job)
        # A job the run's selection left out is recorded, but not in the run's counters.
        await self._record(local_cancellation(job), observed=job in self._run_jobs)

    async def cancel_remotely(self, job: str, job_id: str) -> None:
        """Ask the API to cancel `job_id` if the job is withdrawn and nobody asked yet; a
        refusal is a note (the job then runs to its end)."""
        if not self.withdrawn(job) or job_id in self._asked:
            return
        self._asked.add(job_id)
        try:
            await self._cancel_at_api(job_id)
        except ApiError as exc:
            self._note(f"{job}: the API refused to cancel {job_id} ({exc})")
            return
        self._note(f"{job}: cancel asked for {job_id}")

    async def watch(self) -> None:
        """Every WATCH_INTERVAL: cancel at the API the named jobs in flight with a jobId
        nobody asked about (the pending ones are their tasks' and the run's end's)."""
        while True:
            for job in sorted(self.refresh()):
                record = self._state_of(job)
                if record is not None and record.in_flight and record.job_id:
                    await self.cancel_remotely(job, record.job_id)
            await anyio.sleep(WATCH_INTERVAL)

    async def settle(self) -> None:
        """When the run ends: record `canceled` for every named job still pending, under
        the file's lock, and empty the file (every request is then carried out)."""
        with _locked(self._directory) as fd:
            if fd is None:
                return
            self.refresh()
            for job in sorted(self._jobs):
                if _pending(self._state_of(job)):
                    await self.cancel_locally(job)
            os.ftruncate(fd, 0)
            self._offset = 0
