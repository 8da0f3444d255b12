"""Admission: which job may go to the API now — worker slots, places in flight under
`--concurrency` and per-model limits, and the submit rate.

The token bucket's arithmetic is a pure function (`reserve_slot`); the limiters are thin
async shells with an injected clock, so tests do not really wait. Places are taken only
through shapes that give them back however the holder ends (cancellation included):

    place = await admission.place(model)     # the model's slot, a place in flight, the rate
    tg.start_soon(job_task, place)           # no await in between: nothing can be lost
    ...                                      # in the task: `with place: submit and follow`

`place_at_api` counts a job that is at the API already (past the limits, never waits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from runner.batch.window import Window, after_acceptance, after_refusal
from runner.clock import Clock


@dataclass(frozen=True, slots=True)
class Bucket:
    """Token-bucket state: the earliest time the next request may go."""

    next_free: float


def reserve_slot(bucket: Bucket, now: float, interval: float) -> tuple[Bucket, float]:
    """Reserve the next slot at least `interval` after the previous; returns (state, wait)."""
    at = max(now, bucket.next_free)
    return Bucket(at + interval), at - now


class RateLimiter:
    """At most `per_second` acquisitions per second, evenly spaced (None: unlimited)."""

    def __init__(self, per_second: float | None, *, clock: Clock) -> None:
        self._interval = 1.0 / per_second if per_second else 0.0
        self._bucket = Bucket(0.0)
        self._clock = clock

    async def acquire(self) -> None:
        if self._interval <= 0:
            return
        self._bucket, wait = reserve_slot(self._bucket, self._clock.monotonic(), self._interval)
        if wait > 0:
            await self._clock.sleep(wait)


class Slots:
    """A counter of held slots that any task may release (unlike anyio's CapacityLimiter,
    whose borrower is a task): a feeder takes a slot and the job's task gives it back.

    `force_acquire` counts a slot even past the limit: jobs of a resumed run are at the API
    already. `release` is synchronous so that it also runs in a cancelled task's cleanup.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.peak = 0
        self._freed = anyio.Event()

    async def acquire(self) -> None:
        while self.count >= self.limit:
            await self._freed.wait()
        self.force_acquire()

    def force_acquire(self) -> None:
        self.count += 1
        self.peak = max(self.peak, self.count)

    def release(self) -> None:
        self.count -= 1
        self._wake()

    def set_limit(self, limit: int) -> None:
        """Change the limit; waiters see a larger one at once."""
        grew = limit > self.limit
        self.limit = limit
        if grew:
            self._wake()

    def _wake(self) -> None:
        freed, self._freed = self._freed, anyio.Event()
        freed.set()


class ModelLimiters:
    """Slots per model that has a limit; models without one are unlimited."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self._limiters = {m: Slots(n) for m, n in limits.items()}

    def get(self, model: str) -> Slots | None:
        return self._limiters.get(model)


@dataclass(frozen=True, slots=True)
class Gauge:
    """Admission at one moment, for the display: jobs in flight, the places the window
    allows, what `--concurrency` asked for, and whether the account's cap is the limit."""

    in_flight: int
    limit: int
    asked: int
    capped: bool
    refusals: int
    peak: int = 0  # most jobs in flight at once so far


class Admission:
    """The places of one batch: jobs in flight at the API under an adaptive window (at
    most `--concurrency`, learning the account's cap from its refusals: `window.py`),
    per-model limits within it, worker tasks, the submit rate and the API's Retry-After."""

    def __init__(
        self,
        *,
        window: Window,
        workers: int,
        model_limits: Mapping[str, int],
        rate: RateLimiter,
        clock: Clock,
    ) -> None:
        self.window = window
        self.in_flight = Slots(window.limit)
        self.workers = Slots(workers)
        self.models = ModelLimiters(model_limits)
        self.rate = rate
        self._clock = clock
        self._paused_until = 0.0

    def refused(self, retry_after: float | None) -> None:
        """A generate POST was refused for capacity (429, nothing created): shrink the
        window to what the account holds, and hold new POSTs for `retry_after` seconds."""
        self.window = after_refusal(self.window, self.in_flight.count)
        self.in_flight.set_limit(self.window.limit)
        if retry_after is not None and retry_after > 0:
            until = self._clock.monotonic() + retry_after
            self._paused_until = max(self._paused_until, until)

    def accepted(self) -> None:
        """A generate POST created a job: the window may grow."""
        self.window = after_acceptance(self.window)
        self.in_flight.set_limit(self.window.limit)

    def gauge(self) -> Gauge:
        w = self.window
        return Gauge(self.in_flight.count, w.limit, w.ceiling, w.capped, w.refused,
                     self.in_flight.peak)

    async def _pause(self) -> None:
        while (left := self._paused_until - self._clock.monotonic()) > 0:
            await self._clock.sleep(left)

    async def place(self, model: str) -> Ticket:
        """Wait for a place in flight for a new submission of `model` (its model's slot,
        a place in the window, the end of a Retry-After pause, then the submit rate).
        Cancelled while waiting, it holds nothing."""
        taken: list[Slots] = []
        try:
            for slots in (self.models.get(model), self.in_flight):
                if slots is not None:
                    await slots.acquire()
                    taken.append(slots)
            await self._pause()
            await self.rate.acquire()
        except BaseException:
            for slots in taken:
                slots.release()
            raise
        return Ticket(taken)

    def place_at_api(self, model: str) -> Ticket:
        """A place for a job that is at the API already: counted even past the limits."""
        taken = [s for s in (self.models.get(model), self.in_flight) if s is not None]
        for slots in taken:
            slots.force_acquire()
        return Ticket(taken)

    async def worker(self) -> Ticket:
        """Wait for a worker slot (a task may exist only while it holds one)."""
        await self.workers.acquire()
        return Ticket([self.workers])

    def worker_now(self) -> Ticket:
        """A worker slot even past the limit, for jobs already at the API."""
        self.workers.force_acquire()
        return Ticket([self.workers])


class Ticket:
    """Slots taken together and given back together, once: `with ticket: ...` in the task
    that owns them (the taker hands them over without an await in between)."""

    def __init__(self, slots: list[Slots]) -> None:
        self._slots = slots

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        slots, self._slots = self._slots, []
        for s in slots:
            s.release()
