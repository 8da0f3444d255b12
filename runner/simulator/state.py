"""The simulator's memory: jobs, assets, uploads and counters. Pure state, no I/O.

Times are seconds on the injected monotonic clock; a job's status is never stored but
computed from `now` (see `lifecycle.py`). Identifiers come from a hash of the seed, a stable
key and a per-key counter, so the same seed and the same requests give the same ids however
concurrent requests interleave.
"""

from __future__ import annotations

import hashlib
from collections import Counter
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
        """Jobs created and not yet terminal at `now`."""
        return sum(1 for job in self.jobs.values() if job.ends_at() > now)

    def add_job(self, job: Job) -> None:
        """Record a created job."""
        self.jobs[job.job_id] = job
        self.created_jobs += 1

    def jobs_newest_first(self) -> list[Job]:
        """All jobs, the most recently created first (the listing order)."""
        return sorted(self.jobs.values(), key=lambda job: job.seq, reverse=True)
