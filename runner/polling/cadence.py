"""When to list again: a cadence that follows the jobs in flight, learned from the jobs.

One listing serves every job in flight, so its interval is the batch's detection delay: a
job that ends waits on average half an interval before the runner notices, downloads it and
gives its place to the next job. A batch's efficiency is about `d / (d + interval/2 + …)`
for jobs of typical length `d`, so the interval is a fixed **fraction of the typical
duration** of the jobs in flight — scale-free: ten-times-longer jobs are listed ten times
less often, at the same efficiency and the same listings per job.

- Durations are learned per class of job (model, requested `duration`) from the server's
  own timestamps of finished jobs (`updatedAt - createdAt`), of this run and of earlier
  runs in the folder (the ledger keeps them).
- Before anything is known about a class, the oldest job in flight of that class bounds its
  duration from below: the interval grows with its age (`unknown_fraction` of it), so the
  first completions are noticed within a fraction of their length, at a few listings.
- Jobs younger than the shortest duration seen for their class cannot be done yet: while
  every job in flight is in that quiet time, the next listing waits until it ends (the
  hazard of the learned distribution is zero there).
- The interval is bounded: at least `min_interval` (the request budget: at most
  1/min_interval listings per second per run), at most `max_interval`.

Pure: `next_listing_delay` is a function of the learned durations and the jobs in flight.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

JobClass = Hashable  # (model, requested duration): jobs expected to take alike


@dataclass(frozen=True, slots=True)
class CadencePolicy:
    """The knobs, in fractions of a duration and in seconds."""

    fraction: float = 0.1  # of the typical duration, once one is known
    unknown_fraction: float = 0.25  # of the oldest job's age, before
    min_interval: float = 0.25  # request budget: at most 4 listings per second
    max_interval: float = 15.0


class Durations:
    """Seconds that finished jobs took, per class (the newest `keep` of each)."""

    def __init__(self, keep: int = 500) -> None:
        self._keep = keep
        self._sorted: dict[JobClass, list[float]] = {}
        self._order: dict[JobClass, list[float]] = {}

    def add(self, job_class: JobClass, seconds: float) -> None:
        if not seconds > 0:
            return
        order = self._order.setdefault(job_class, [])
        ranked = self._sorted.setdefault(job_class, [])
        order.append(seconds)
        bisect.insort(ranked, seconds)
        if len(order) > self._keep:
            ranked.remove(order.pop(0))

    def typical(self, job_class: JobClass) -> float | None:
        """The median duration seen, or None."""
        ranked = self._sorted.get(job_class)
        return ranked[len(ranked) // 2] if ranked else None

    def classes(self) -> list[JobClass]:
        """The classes some duration was seen for."""
        return list(self._sorted)

    def shortest(self, job_class: JobClass) -> float | None:
        """A low quantile (5 %) of the durations seen: younger jobs are not done yet."""
        ranked = self._sorted.get(job_class)
        return ranked[len(ranked) // 20] if ranked else None


@dataclass(frozen=True, slots=True)
class InFlight:
    """A job being followed: its class and how long it has been at the API (seconds)."""

    job_class: JobClass
    age: float


def next_listing_delay(
    policy: CadencePolicy, durations: Durations, jobs: Iterable[InFlight]
) -> float:
    """Seconds until the next listing, for these jobs in flight."""
    oldest: dict[JobClass, float] = {}
    quiet = float("inf")
    for job in jobs:
        oldest[job.job_class] = max(job.age, oldest.get(job.job_class, 0.0))
        shortest = durations.shortest(job.job_class)
        quiet = min(quiet, (shortest - job.age) if shortest is not None else 0.0)
    if not oldest:
        return policy.max_interval  # nothing in flight: nothing to wait for
    wanted = min(
        policy.fraction * typical if (typical := durations.typical(job_class)) is not None
        else policy.unknown_fraction * age
        for job_class, age in oldest.items()
    )
    delay = max(wanted, quiet)
    return min(policy.max_interval, max(policy.min_interval, delay))
