"""Matching POSTs whose answer was lost to the jobs the API actually created: pure parts.

A generate request whose fate is unknown left an `intent` in the ledger: its canonical body
and when it was sent. The API's job list (`GET /v1/jobs?createdAfter=…`) holds every job
created since, with the request body as `metadata.input`. An intent adopts a listed job whose
body matches and that nobody has claimed (no jobId in the ledger, no other intent). Identical
bodies — repeats of one prompt, which these models cannot tell apart by a seed — are matched
by count: oldest intent first, oldest job first, one job each.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from runner.canonical import canonical_json
from runner.domain import RemoteJob

# A job's createdAt comes from the server's clock and an intent's ts from ours: allow skew.
CLOCK_SKEW = timedelta(seconds=120)


def body_fingerprint(model: str, body: Mapping[str, Any]) -> str:
    """sha256 of the model id and the canonical body."""
    return hashlib.sha256(f"{model}\n{canonical_json(body)}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Intent:
    """A POST whose answer was lost: which job, which model and body, sent when."""

    job: str
    model: str
    body_json: str
    ts: str


def parse_ts(value: str) -> datetime:
    """ISO 8601 with a `Z` or an offset."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def listing_start(intents: Sequence[Intent]) -> str:
    """The `createdAfter` to list from: the oldest intent, less the clock skew."""
    oldest = min(parse_ts(i.ts) for i in intents) - CLOCK_SKEW
    return oldest.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _candidate_key(job: RemoteJob) -> str | None:
    return canonical_json(job.input) if job.input is not None else None


def match_intents(
    intents: Sequence[Intent], jobs: Iterable[RemoteJob], claimed: set[str]
) -> dict[str, RemoteJob]:
    """Assign to each intent at most one unclaimed listed job with its body; by count.

    Returns {manifest job id: adopted job}. `claimed` (jobIds known to the ledger) is not
    modified; the caller adds the adopted ones.

    The API's job does not say which model it ran, so a body that unresolved intents of
    *different* models share is ambiguous: none of those intents adopts anything (see
    `ambiguous_intents`; the runner never lets such POSTs be in the air together).
    """
    unsure = {i.job for i in ambiguous_intents(intents)}
    intents = [i for i in intents if i.job not in unsure]
    pool: dict[str, list[RemoteJob]] = defaultdict(list)
    for job in jobs:
        key = _candidate_key(job)
        if key is not None and job.job_id not in claimed:
            pool[key].append(job)
    for candidates in pool.values():
        candidates.sort(key=_created_order)
    adopted: dict[str, RemoteJob] = {}
    taken: set[str] = set()
    for intent in sorted(intents, key=lambda i: (i.ts, i.job)):
        for job in pool.get(intent.body_json, ()):
            if job.job_id in taken or not _fits(intent, job):
                continue
            adopted[intent.job] = job
            taken.add(job.job_id)
            break
    return adopted


def ambiguous_intents(intents: Sequence[Intent]) -> list[Intent]:
    """Intents whose body another intent of a different model shares."""
    models: dict[str, set[str]] = defaultdict(set)
    for intent in intents:
        models[intent.body_json].add(intent.model)
    return [i for i in intents if len(models[i.body_json]) > 1]


_EPOCH = datetime.min.replace(tzinfo=UTC)


def _created_order(job: RemoteJob) -> tuple[datetime, str]:
    # Instants, not strings: a listing may mix precisions ("…00Z", "…00.500Z") and offsets.
    return (parse_ts(job.created_at) if job.created_at else _EPOCH, job.job_id)


def _fits(intent: Intent, job: RemoteJob) -> bool:
    if job.model_id is not None and job.model_id != intent.model:
        return False
    if job.created_at is None:
        return True
    return parse_ts(job.created_at) >= parse_ts(intent.ts) - CLOCK_SKEW


class Reconciler:
    """Resolves lost POST answers against the API's job list, one listing at a time.

    It keeps the set of jobIds already claimed (from the ledger, from successful POSTs and
    from adoptions) and the POSTs under way per body: a lost answer is looked for only once
    no POST of the same body is still in the air, so an intent never adopts the job a
    sibling's POST is about to report.
    """

    def __init__(
        self,
        list_jobs: Callable[[str], AsyncIterator[RemoteJob]],
        *,
        claimed: set[str],
        settle: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        poll_interval: float = 2.0,
    ) -> None:
        self._list_jobs = list_jobs
        self.claimed = claimed
        self._settle = settle
        self._clock = clock
        self._sleep = sleep
        self._interval = poll_interval
        self._lock = anyio.Lock()
        self._posting: Counter[str] = Counter()
        self._holders: dict[str, Counter[str]] = defaultdict(Counter)
        self._released = anyio.Event()

    def posting(self, body_json: str, delta: int) -> None:
        """Count a POST of this body as started (+1) or answered (-1)."""
        self._posting[body_json] += delta
        if self._posting[body_json] <= 0:
            del self._posting[body_json]  # a long batch must not keep every body it sent
            self._notify()

    async def begin(self, body_json: str, model: str) -> None:
        """Wait until no job of another *model* with this body is being posted or looked
        for, then hold the body for `model`. Jobs do not say their model, so this is what
        keeps a lost answer from ever being matched to another model's job."""
        while any(n and m != model for m, n in self._holders[body_json].items()):
            await self._released.wait()
        self._holders[body_json][model] += 1

    def end(self, body_json: str, model: str) -> None:
        """Release what `begin` held (the jobId is recorded, or the job given up)."""
        self._holders[body_json][model] -= 1
        if not any(self._holders[body_json].values()):
            del self._holders[body_json]
        self._notify()

    def _notify(self) -> None:
        """Wake whoever waits for a POST to be answered or a body to be released."""
        released, self._released = self._released, anyio.Event()
        released.set()

    def claim(self, job_id: str) -> None:
        self.claimed.add(job_id)

    async def _list_and_match(self, intents: Sequence[Intent]) -> dict[str, RemoteJob]:
        async with self._lock:
            jobs = [j async for j in self._list_jobs(listing_start(intents))]
            adopted = match_intents(intents, jobs, self.claimed)
            self.claimed.update(j.job_id for j in adopted.values())
            return adopted

    async def resolve(self, intents: Sequence[Intent]) -> dict[str, RemoteJob | None]:
        """For each intent, the job the API created for it, or None after the settle window.

        Lists at least once, then until every intent is matched or the settle window after
        the newest intent has passed (an old intent from a crashed run needs one listing).
        """
        result: dict[str, RemoteJob | None] = {}
        waiting = list(intents)
        newest = max((parse_ts(i.ts) for i in intents), default=datetime.now(UTC))
        left = (newest - datetime.now(UTC)).total_seconds() + self._settle
        # Clamped: an intent stamped in the future (another clock) must not wait forever.
        deadline = self._clock() + min(max(0.0, left), self._settle)
        while waiting:
            while any(self._posting[i.body_json] for i in waiting):
                await self._released.wait()
            adopted = await self._list_and_match(waiting)
            result.update(adopted)
            waiting = [i for i in waiting if i.job not in adopted]
            if not waiting or self._clock() >= deadline:
                break
            await self._sleep(min(self._interval, max(0.0, deadline - self._clock())))
        result.update({i.job: None for i in waiting})
        return result
