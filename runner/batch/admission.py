"""Limits as small objects: a submit-rate limiter and per-model concurrency limiters.

The token bucket's arithmetic is a pure function (`reserve_slot`); the limiter is a thin
async shell around it with an injected clock and sleep, so tests do not really wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import anyio


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

    def __init__(
        self,
        per_second: float | None,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._interval = 1.0 / per_second if per_second else 0.0
        self._bucket = Bucket(0.0)
        self._clock = clock
        self._sleep = sleep

    async def acquire(self) -> None:
        if self._interval <= 0:
            return
        self._bucket, wait = reserve_slot(self._bucket, self._clock(), self._interval)
        if wait > 0:
            await self._sleep(wait)


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
        freed, self._freed = self._freed, anyio.Event()
        freed.set()


class ModelLimiters:
    """Slots per model that has a limit; models without one are unlimited."""

    def __init__(self, limits: Mapping[str, int]) -> None:
        self._limiters = {m: Slots(n) for m, n in limits.items()}

    def get(self, model: str) -> Slots | None:
        return self._limiters.get(model)
