"""The simulator's memory: jobs, assets, uploads and counters. Pure state, no I/O.

Times are seconds on the injected monotonic clock; a job's status is never stored but
computed from `now` (see `lifecycle.py`). Identifiers come from a hash of the seed, a stable
key and a per-key counter, so the same seed and the same requests give the same ids however
concurrent requests interleave.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.simulator import lifecycle
from runner.simulator.faults import Outcome

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 62)
        chars.append(_ALPHABET[rest])
    return "".join(chars)


@dataclass
class Job:
    """A custom-generation job and everything needed to compute its status at any time."""

    job_id: str
    model_id: str
    fingerprint: str
    body: Any
    created: float
    duration: float
    outcome: Outcome
    asset_ids: tuple[str, ...]
    cost: int
    seq: int
    canceled_at: float | None = None  # seconds after creation

    def snapshot(self, now: float) -> lifecycle.Snapshot:
        """The job's state at monotonic time `now`."""
        return lifecycle.snapshot(self.duration, self.outcome, now - self.created, self.canceled_at)

    def ends_at(self) -> float:
        """Monotonic time at which the job stops being in flight."""
        end = lifecycle.end_offset(self.duration, self.outcome)
        if self.canceled_at is not None:
            end = min(end, self.canceled_at)
        return self.created + end

    def latest_update(self) -> float:
        """Monotonic time no transition of the job can come after: every status change
        (phases, the end, a cancel) happens within its drawn duration."""
        return self.created + self.duration


@dataclass(frozen=True, slots=True)
class Indexed:
    """A job in the listing order, with bounds that hold for it and every older job."""

    job: Job
    created_bound: float  # the latest `created` among this job and older ones
    update_bound: float  # the latest `latest_update()` among this job and older ones


@dataclass
class Asset:
    """An asset: an uploaded input or a job's output video (its file may not exist yet)."""

    asset_id: str
    kind: str
    mime_type: str
    name: str
    source: str
    created: float
    path: Path | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    parent_job_id: str | None = None
    model_id: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds of media, when known."""
        value = self.properties.get("duration")
        return float(value) if isinstance(value, int | float) else None


@dataclass
class Upload:
    """A multipart upload: declared parts, received part files, and the asset it became."""

    upload_id: str
    file_name: str
    content_type: str
    file_size: int
    parts_count: int
    kind: str
    created: float
    parts: dict[int, Path] = field(default_factory=dict)
    completed_at: float | None = None
    asset_id: str | None = None
    error: str | None = None


class SimState:
    """Every record the simulator holds, plus per-key counters for ids and attempts."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.jobs: dict[str, Job] = {}
        self.assets: dict[str, Asset] = {}
        self.uploads: dict[str, Upload] = {}
        self._counters: Counter[str] = Counter()
        self.created_jobs = 0
        # Creation order with running maxima, so that a listing filtered by date stops at
        # the first job below which nothing can match: it costs what it returns, not the
        # whole history. Bounds rather than sortedness: exact for any clock.
        self._ordered: list[Indexed] = []
        self._seqs: list[int] = []
        # Jobs that were still in flight at the last count, and when that was.
        self._maybe_in_flight: list[Job] = []
        self._counted_at: float | None = None

    def new_id(self, prefix: str, key: str) -> str:
        """A fresh id such as `job_…`, fixed by the seed, `key` and how often `key` was used."""
        index = self._counters[f"id:{prefix}:{key}"]
        self._counters[f"id:{prefix}:{key}"] += 1
        digest = hashlib.sha256(f"{self.seed}\x1f{prefix}\x1f{key}\x1f{index}".encode()).digest()
        return f"{prefix}_{_base62(int.from_bytes(digest, 'big'), 25)}"

    def next_attempt(self, key: str) -> int:
        """0 the first time `key` is seen, then 1, 2, …: the attempt number for faults."""
        attempt = self._counters[f"attempt:{key}"]
        self._counters[f"attempt:{key}"] += 1
        return attempt

    def jobs_in_flight(self, now: float) -> int:
        """Jobs created and not yet terminal at `now`.

        A job's end never moves later (a cancel only brings it forward), so a job found
        ended at one count stays ended for any later `now`: each count looks only at the
        jobs still in flight at the previous one. An earlier `now` counts everything.
        """
        if self._counted_at is not None and now < self._counted_at:
            return sum(1 for job in self.jobs.values() if job.ends_at() > now)
        self._maybe_in_flight = [job for job in self._maybe_in_flight if job.ends_at() > now]
        self._counted_at = now
        return len(self._maybe_in_flight)

    def add_job(self, job: Job) -> None:
        """Record a created job; `seq` must be larger than every earlier job's."""
        if self._seqs and job.seq <= self._seqs[-1]:
            raise ValueError(f"job {job.job_id}: seq {job.seq} is not after {self._seqs[-1]}")
        self.jobs[job.job_id] = job
        self.created_jobs += 1
        previous = self._ordered[-1] if self._ordered else None
        self._ordered.append(Indexed(
            job,
            max(job.created, previous.created_bound) if previous else job.created,
            max(job.latest_update(), previous.update_bound) if previous else job.latest_update(),
        ))
        self._seqs.append(job.seq)
        self._maybe_in_flight.append(job)

    def newest_first(self, before_seq: int | None = None) -> Iterator[Indexed]:
        """Jobs in the listing order (newest first), from the first one below `before_seq`."""
        end = len(self._ordered) if before_seq is None else bisect_left(self._seqs, before_seq)
        for index in range(end - 1, -1, -1):
            yield self._ordered[index]

    def jobs_newest_first(self) -> list[Job]:
        """All jobs, the most recently created first (the listing order)."""
        return [entry.job for entry in self.newest_first()]
