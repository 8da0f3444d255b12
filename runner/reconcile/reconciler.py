"""The async shell of reconciliation: who holds which body, which POSTs are in the air, and
the listing that resolves lost answers (the matching itself is `matching.py`, pure).

Use it through its shapes, which cannot be misused:

    async with reconciler.holding(body_json, model) as held:
        ...                                   # write the intent
        submission = await held.post(send)    # one POST; its jobId is claimed on success
        ...or, when the answer was lost:
        job = await held.resolve(intent)      # the job it created, or None

`holding` waits until no POST of the same body for another *model* is being made or looked
for (a listed job does not say its model), and releases the body however the block ends —
cancellation included.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import anyio

from runner.clock import Clock, parse_iso
from runner.domain import RemoteJob, Submission
from runner.reconcile.matching import Intent, listing_start, match_intents


class Reconciler:
    """Resolves lost POST answers against the API's job list, one listing at a time.

    It keeps the set of jobIds already claimed (from the ledger, from successful POSTs and
    from adoptions) and the POSTs in the air per body: a lost answer is looked for only
    once no POST of the same body is still in the air, so an intent never adopts the job a
    sibling's POST is about to report.
    """

    def __init__(
        self,
        list_jobs: Callable[[str], AsyncIterator[RemoteJob]],
        *,
        claimed: set[str],
        settle: float,
        clock: Clock,
        poll_interval: float = 2.0,
    ) -> None:
        self._list_jobs = list_jobs
        self.claimed = claimed
        self._settle = settle
        self._clock = clock
        self._interval = poll_interval
        self._lock = anyio.Lock()
        self._posting: Counter[str] = Counter()
        self._holders: dict[str, Counter[str]] = defaultdict(Counter)
        self._released = anyio.Event()
        # Shared listings: who waits, what a listing found for them, and which listing
        # (by number) last looked for each.
        self._waiting: dict[str, Intent] = {}
        self._adopted: dict[str, RemoteJob] = {}
        self._covered: dict[str, int] = {}
        self._started = 0

    @asynccontextmanager
    async def holding(self, body_json: str, model: str) -> AsyncIterator[Held]:
        """Hold `body_json` for `model` for the block (see the module docstring)."""
        while any(n and m != model for m, n in self._holders[body_json].items()):
            await self._released.wait()
        self._holders[body_json][model] += 1
        try:
            yield Held(self, body_json)
        finally:
            self._holders[body_json][model] -= 1
            if not any(self._holders[body_json].values()):
                del self._holders[body_json]
            self._notify()

    def _notify(self) -> None:
        """Wake whoever waits for a POST to be answered or a body to be released."""
        released, self._released = self._released, anyio.Event()
        released.set()

    async def _post(self, body_json: str, send: Callable[[], Awaitable[Submission]]) -> Submission:
        self._posting[body_json] += 1
        try:
            submission = await send()
        finally:
            self._posting[body_json] -= 1
            if self._posting[body_json] <= 0:
                del self._posting[body_json]  # a long batch must not keep every body it sent
            self._notify()
        self.claimed.add(submission.job.job_id)
        return submission

    async def _look(self, waiting: Sequence[Intent]) -> None:
        """Make sure a listing that started from now on has looked for every intent of
        `waiting`: one serves every resolver waiting at that moment (their adoptions wait in
        `_adopted`), so a hundred lost answers cost one listing per interval, not a hundred."""
        asked = self._started
        async with self._lock:
            if all(self._covered.get(i.job, -1) >= asked for i in waiting):
                return  # a listing made while we waited for the lock covered us
            # Only intents with no POST of their body in the air: a sibling's answer must
            # never be adopted by another intent.
            eligible = [i for i in self._waiting.values() if not self._posting[i.body_json]]
            number = self._started  # this listing started after every ask up to this number
            self._started += 1
            jobs = [j async for j in self._list_jobs(listing_start(eligible))]
            adopted = match_intents(eligible, jobs, self.claimed)
            self.claimed.update(j.job_id for j in adopted.values())
            self._adopted.update(adopted)
            for intent in eligible:
                self._covered[intent.job] = number

    def _take(self, waiting: Sequence[Intent]) -> dict[str, RemoteJob]:
        return {i.job: self._adopted.pop(i.job) for i in waiting if i.job in self._adopted}

    async def resolve(self, intents: Sequence[Intent]) -> dict[str, RemoteJob | None]:
        """For each intent, the job the API created for it, or None after the settle window.

        Lists at least once, then until every intent is matched or the settle window after
        the newest intent has passed (an old intent from a crashed run needs one listing).
        """
        result: dict[str, RemoteJob | None] = {}
        waiting = list(intents)
        now = self._clock.wall()
        newest = max((parse_iso(i.ts) for i in intents), default=now)
        left = (newest - now).total_seconds() + self._settle
        # Clamped: an intent stamped in the future (another clock) must not wait forever.
        deadline = self._clock.monotonic() + min(max(0.0, left), self._settle)
        self._waiting.update((i.job, i) for i in intents)
        try:
            while waiting:
                while any(self._posting[i.body_json] for i in waiting):
                    await self._released.wait()
                await self._look(waiting)
                result.update(self._take(waiting))
                waiting = [i for i in waiting if i.job not in result]
                if not waiting or self._clock.monotonic() >= deadline:
                    break
                pause = min(self._interval, max(0.0, deadline - self._clock.monotonic()))
                await self._clock.sleep(pause)
        finally:
            for intent in intents:
                self._waiting.pop(intent.job, None)
                self._covered.pop(intent.job, None)
        result.update(self._take(waiting))  # adopted by a listing made for someone else
        result.update({i.job: None for i in waiting if i.job not in result})
        return result


class Held:
    """A body held for one model by `Reconciler.holding`."""

    def __init__(self, reconciler: Reconciler, body_json: str) -> None:
        self._reconciler = reconciler
        self.body_json = body_json

    async def post(self, send: Callable[[], Awaitable[Submission]]) -> Submission:
        """Make the POST: counted as in the air until answered; its jobId claimed."""
        return await self._reconciler._post(self.body_json, send)

    async def resolve(self, intent: Intent) -> RemoteJob | None:
        """The job a lost POST of this body created, or None after the settle window."""
        return (await self._reconciler.resolve([intent]))[intent.job]
