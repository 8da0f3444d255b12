"""Following many jobs with one listing: `GET /v1/jobs?updatedAfter=…` instead of one GET
per job (`--poll-mode list`).

One loop lists the jobs updated since a cursor every `interval` seconds and hands each
update to the job waiting for it. The cursor follows the server's own `updatedAt` values
(less an overlap), so the two machines' clocks never have to agree. A job not seen in a
listing for `fallback` seconds is asked about directly, so a listing that misses something
(a clock jump, a filter quirk) delays a job but never loses it. A job those direct looks
keep answering 404 for is gone once the 404s outlast `lost_grace` (`JobGone`).

Cost: one request per interval for the whole batch, plus pages; per-job polling costs about
one request per job per interval. The benchmark (tests/benchmarks/bench_run.py) measures
both.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio

from runner.clock import Clock, format_iso, parse_iso
from runner.domain import RemoteJob
from runner.errors import ApiError, AuthError, CreditError
from runner.polling.policy import JobGone, NotFound, PollTimeout, is_not_found

log = logging.getLogger(__name__)

OVERLAP = timedelta(seconds=5)


def next_cursor(cursor: datetime, jobs: list[RemoteJob]) -> datetime:
    """The next `updatedAfter`: the newest `updatedAt` seen, less the overlap; never back."""
    seen = [parse_iso(j.updated_at) for j in jobs if j.updated_at]
    if not seen:
        return cursor
    return max(cursor, max(seen) - OVERLAP)


@dataclass
class _Watch:
    on_update: Callable[[RemoteJob], Awaitable[None]] | None
    last_seen: float
    missing: NotFound
    done: anyio.Event = field(default_factory=anyio.Event)
    result: RemoteJob | None = None
    error: ApiError | JobGone | None = None


class ListWatcher:
    """Wakes each waiting job when a listing shows it terminal."""

    def __init__(
        self,
        list_updated: Callable[[str], AsyncIterator[RemoteJob]],
        get_job: Callable[[str], Awaitable[RemoteJob]],
        *,
        clock: Clock,
        interval: float = 5.0,
        fallback: float = 120.0,
        lost_grace: float = 120.0,
    ) -> None:
        self._list = list_updated
        self._get = get_job
        self._clock = clock
        self.interval = interval
        self.fallback = fallback
        self.lost_grace = lost_grace
        self._cursor = clock.wall() - timedelta(minutes=2)
        self._watches: dict[str, _Watch] = {}

    async def wait(
        self,
        job_id: str,
        *,
        deadline: float,
        on_update: Callable[[RemoteJob], Awaitable[None]] | None = None,
    ) -> RemoteJob:
        """The job once terminal; PollTimeout after `deadline` seconds, JobGone when its
        direct looks answer 404 past the grace."""
        watch = _Watch(on_update, self._clock.monotonic(), NotFound(self.lost_grace))
        self._watches[job_id] = watch
        try:
            with anyio.move_on_after(deadline):
                await watch.done.wait()
        finally:
            del self._watches[job_id]
        if watch.error is not None:
            raise watch.error
        if watch.result is None:
            raise PollTimeout(None)
        return watch.result

    def _fail_all(self, exc: ApiError) -> None:
        for watch in self._watches.values():
            watch.error = exc
            watch.done.set()

    async def run(self) -> None:
        """List, dispatch, sleep; forever (cancel it with the batch)."""
        while True:
            await self._clock.sleep(self.interval)
            if not self._watches:
                continue
            try:
                await self._list_once()
            except (AuthError, CreditError) as exc:
                self._fail_all(exc)  # each waiting job raises it: the run halts
                continue
            except ApiError as exc:
                # The client already retried; the jobs' own fallback GETs will tell more.
                log.warning("listing jobs failed: %s", exc)
            await self._ask_the_unseen()

    async def _list_once(self) -> None:
        seen: list[RemoteJob] = []
        async for job in self._list(format_iso(self._cursor)):
            seen.append(job)
            await self._dispatch(job)
        self._cursor = next_cursor(self._cursor, seen)

    async def _ask_the_unseen(self) -> None:
        now = self._clock.monotonic()
        stale = [j for j, w in self._watches.items() if now - w.last_seen > self.fallback]
        for job_id in stale:
            try:
                job = await self._get(job_id)
            except (AuthError, CreditError) as exc:
                self._fail_all(exc)
                return
            except ApiError as exc:
                self._unanswered(job_id, exc)
                continue
            await self._dispatch(job)

    def _unanswered(self, job_id: str, exc: ApiError) -> None:
        watch = self._watches.get(job_id)
        if watch is None or watch.done.is_set():
            return
        if is_not_found(exc):
            gone = watch.missing.gone(job_id, self._clock.monotonic())
            if gone is not None:
                watch.error = gone
                watch.done.set()
            return
        log.warning("asking the API about job %s failed: %s", job_id, exc)

    async def _dispatch(self, job: RemoteJob) -> None:
        watch = self._watches.get(job.job_id)
        if watch is None or watch.done.is_set():
            return
        watch.last_seen = self._clock.monotonic()
        watch.missing.answered()
        if watch.on_update is not None:
            await watch.on_update(job)
        if job.status.terminal:
            watch.result = job
            watch.done.set()
