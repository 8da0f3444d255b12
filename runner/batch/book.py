"""The job book of a run: every job's record, moved only by `record(event)`.

`record` makes the event durable (the ledger writer returns once it is fsynced), applies
the one transition (`runner.ledger.apply`) and reports it to the observers — the progress
counters and the failure count. It is the only place a job's state changes during a run,
and it uses the same transition as replay, `status` and `report`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from runner.domain import JobState
from runner.ledger import Event, JobRecord, apply

Observer = Callable[[JobRecord | None, JobRecord, Event], None]


class EventSink(Protocol):
    """Where the book's events go: `append` returns once the event is durable (the folder's
    `LedgerWriter`, or a shared ledger's fenced writes)."""

    async def append(self, event: Event) -> None: ...


class JobBook:
    """Records by manifest job id: those the ledger held at start, then this run's."""

    def __init__(
        self,
        writer: EventSink,
        records: Mapping[str, JobRecord],
        observers: tuple[Observer, ...] = (),
        on_adopt: Callable[[JobState, JobState], None] | None = None,
    ) -> None:
        self._writer = writer
        self._records = dict(records)
        self._observers = observers
        self._on_adopt = on_adopt

    def get(self, job: str) -> JobRecord | None:
        return self._records.get(job)

    @property
    def records(self) -> Mapping[str, JobRecord]:
        return self._records

    def state(self, job: str) -> JobState:
        record = self._records.get(job)
        return record.state if record is not None else JobState.PENDING

    def next_attempt(self, job: str) -> int:
        """The number of this job's next POST: one past its last intent."""
        record = self._records.get(job)
        return (record.attempt if record is not None else 0) + 1

    def adopt(self, records: Mapping[str, JobRecord]) -> None:
        """Take the records another runner of a shared batch wrote for jobs this run now
        holds. No observer is told of an event (they happened elsewhere); `on_adopt` hears
        each job whose state moved meanwhile, so the run's counters stay whole."""
        for job, record in records.items():
            before = self.state(job)
            self._records[job] = record
            if self._on_adopt is not None and before is not record.state:
                self._on_adopt(before, record.state)

    async def record(self, event: Event, *, observed: bool = True) -> JobRecord:
        """Write `event` durably, then move the job; its new record. `observed=False` for a
        job outside the run (a cancel request for a job the run's selection left out): the
        ledger has it, the run's counters do not.

        Raises LedgerWriteError when the ledger cannot be written, FencedError when a shared
        batch's job is no longer this runner's (nothing moves then).
        """
        await self._writer.append(event)
        old = self._records.get(event.job)
        new = apply(old, event)
        self._records[event.job] = new
        for observe in self._observers if observed else ():
            observe(old, new, event)
        return new


def count_failures(on_failure: Callable[[], None]) -> Observer:
    """An observer calling `on_failure` for each job that reaches `failed` in this run."""

    def observe(old: JobRecord | None, new: JobRecord, _event: Event) -> None:
        if new.state is JobState.FAILED and (old is None or old.state is not JobState.FAILED):
            on_failure()

    return observe
