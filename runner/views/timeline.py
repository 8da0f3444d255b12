"""A run over time, from its ledger: jobs in flight, completions, refusals, per-job timings.

`timeline_of(events)` folds the ledger's events (in file order) once, like `replay`, but
keeps what `replay` forgets — when things happened:

- a job is *in flight* from its `submitted` event until its remote terminal state, or until
  this run stopped following it (`timed-out`, `poll-failed`: they stop counting against
  `--concurrency`, as the engine counts them);
- a *completion* is a terminal event (succeeded, failed, canceled, or a rejected POST);
- a *refusal* is a generate POST that the API turned away with a 429 (the account's
  parallel-job cap, or its rate limit) and that created nothing: the ledger records it as
  `not-submitted` with the API's answer; the number of jobs in flight at that moment is
  where the account's cap met the admission;
- a job's timing is its last attempt's submit, terminal and last-file times, so
  `submit_to_file` is what a user waited for a video once the API had taken the job;
- the *filling* span runs until the last job's first intent: while it lasts, jobs are
  waiting for a place, so the number of jobs in flight held longest then (`held`) is what
  the admission could get. Below the asked `--concurrency`, that is the account's cap
  (the client retries a 429 quietly, so most refusals never reach the ledger) or another
  limit of the run (per-model, submit rate).

Times are POSIX seconds (UTC). A ledger line without a parsable `ts` is skipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from runner.clock import parse_iso
from runner.ledger import (
    Downloaded,
    Event,
    Finished,
    Intended,
    NotSubmitted,
    PollFailed,
    Rejected,
    Submitted,
    TimedOut,
)

# A refusal that created nothing, as the client words a 429 (cap or rate limit).
_REFUSAL = re.compile(r"\b429\b|too many", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class JobTiming:
    """When a job's last attempt was taken by the API, ended there, and got its last file."""

    submitted: float | None = None
    finished: float | None = None
    filed: float | None = None

    @property
    def submit_to_file(self) -> float | None:
        """Seconds from the API taking the job to its (last) verified file; None if either
        is unknown."""
        if self.submitted is None or self.filed is None:
            return None
        return max(0.0, self.filed - self.submitted)


@dataclass(frozen=True, slots=True)
class Timeline:
    """The run over time. `in_flight` is a step series of (time, jobs in flight after it);
    `completions` the times of terminal events; `refusals` (time, jobs in flight then)."""

    start: float | None = None
    end: float | None = None
    in_flight: tuple[tuple[float, int], ...] = ()
    completions: tuple[float, ...] = ()
    refusals: tuple[tuple[float, int], ...] = ()
    timings: Mapping[str, JobTiming] = field(default_factory=dict)
    filled: float | None = None  # the last first intent: no job waited after it

    @property
    def wall_seconds(self) -> float | None:
        """From the first ledger event to the last (across every run of the folder)."""
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    @property
    def peak_in_flight(self) -> int:
        return max((n for _, n in self.in_flight), default=0)

    @property
    def held(self) -> int | None:
        """The number of jobs in flight held longest while jobs were waiting (None when
        nothing waited long enough to tell: no span, or a single submission)."""
        if self.filled is None or not self.in_flight:
            return None
        held = held_level(self.in_flight, self.filled)
        return held if held else None

    @property
    def cap_seen(self) -> int | None:
        """The most jobs in flight at which the API refused one more (None: never)."""
        return max((n for _, n in self.refusals), default=None)


def _seconds(ts: str) -> float | None:
    try:
        return parse_iso(ts).timestamp()
    except ValueError:
        return None


class _Fold:
    """The mutable accumulator behind `timeline_of` (private: the result is frozen)."""

    def __init__(self) -> None:
        self.flying: set[str] = set()
        self.in_flight: list[tuple[float, int]] = []
        self.completions: list[float] = []
        self.refusals: list[tuple[float, int]] = []
        self.timings: dict[str, JobTiming] = {}
        self.intended: set[str] = set()
        self.filled: float | None = None

    def _fly(self, job: str, at: float, flying: bool) -> None:
        if (job in self.flying) == flying:
            return
        if flying:
            self.flying.add(job)
        else:
            self.flying.discard(job)
        self.in_flight.append((at, len(self.flying)))

    def _time(self, job: str, **values: float | None) -> None:
        self.timings[job] = replace(self.timings.get(job, JobTiming()), **values)

    def add(self, event: Event, at: float) -> None:
        job = event.job
        if isinstance(event, Intended):
            if job not in self.intended:
                self.intended.add(job)
                self.filled = at
            self._fly(job, at, False)
            self._time(job, submitted=None, finished=None, filed=None)
        elif isinstance(event, Submitted):
            self._fly(job, at, True)
            self._time(job, submitted=at)
        elif isinstance(event, Finished | Rejected):
            self._fly(job, at, False)
            self.completions.append(at)
            self._time(job, finished=at)
        elif isinstance(event, TimedOut | PollFailed):
            self._fly(job, at, False)
        elif isinstance(event, NotSubmitted) and _REFUSAL.search(event.error or ""):
            self.refusals.append((at, len(self.flying)))
        elif isinstance(event, Downloaded):
            self._time(job, filed=at)


def timeline_of(events: Iterable[Event]) -> Timeline:
    """The run over time, from its ledger's events in file order (see the module's doc)."""
    fold = _Fold()
    start: float | None = None
    end: float | None = None
    for event in events:
        at = _seconds(event.ts)
        if at is None:
            continue
        start = at if start is None else min(start, at)
        end = at if end is None else max(end, at)
        fold.add(event, at)
    return Timeline(start, end, tuple(fold.in_flight), tuple(fold.completions),
                    tuple(fold.refusals), fold.timings, fold.filled)  # fmt: skip


def held_level(series: Sequence[tuple[float, int]], until: float) -> int:
    """The value a step series of (time, value after it) held longest before `until`
    (the highest of equals; 0 for no time at all)."""
    held: dict[int, float] = {}
    points = sorted(series, key=lambda p: p[0])
    if not points:
        return 0
    for (at, value), (following, _) in zip(points, [*points[1:], (until, 0)], strict=True):
        span = min(following, until) - at
        if span > 0:
            held[value] = held.get(value, 0.0) + span
    return max(held, key=lambda v: (held[v], v), default=0)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q`-th percentile (0-100) of `values`, nearest-rank (a value that occurred, as
    latency reports give it); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
