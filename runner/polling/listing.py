"""Following many jobs with one listing: `GET /v1/jobs?updatedAfter=…` instead of one GET
per job (`--poll-mode list`).

One loop lists the jobs updated since a cursor, at the cadence the jobs in flight call for
(`cadence.py`: a fraction of their learned duration), and hands each update to the job
waiting for it; the durations it learns come from the server's timestamps. The cursor
follows the server's own `updatedAt` values (less an overlap), so the two machines' clocks
never have to agree. A job not seen in a
listing for `fallback` seconds is asked about directly, so a listing that misses something
(a clock jump, a filter quirk) delays a job but never loses it. A job those direct looks
keep answering 404 for is gone once the 404s outlast `lost_grace` (`JobGone`).

Cost: one request per interval for the whole batch, plus pages; per-job polling costs about
one request per job per interval. The benchmark (tests/benchmarks/bench_run.py) measures
both.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio

from runner.clock import Clock, format_iso, parse_iso
from runner.domain import RemoteJob
from runner.errors import ApiError, AuthError, CreditError
from runner.polling.cadence import (
    CadencePolicy,
    Durations,
    InFlight,
    JobClass,
    next_listing_delay,
)
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
    job_class: JobClass
    started: float
    last_seen: float
    missing: NotFound
    done: anyio.Event = field(default_factory=anyio.Event)
    result: RemoteJob | None = None
    error: ApiError | JobGone | None = None


class ListWatcher:
    """Wakes each waiting job when a listing shows it terminal; lists at the cadence the
    jobs in flight call for (`cadence.py`)."""

    def __init__(
        self,
        list_updated: Callable[[str], AsyncIterator[RemoteJob]],
        get_job: Callable[[str], Awaitable[RemoteJob]],
        *,
        clock: Clock,
        cadence: CadencePolicy | None = None,
        durations: Durations | None = None,
        fallback: float = 120.0,
        lost_grace: float = 120.0,
    ) -> None:
        self._list = list_updated
        self._get = get_job
        self._clock = clock
        self.cadence = cadence or CadencePolicy()
        self.durations = durations or Durations()
        self.fallback = fallback
        self.lost_grace = lost_grace
        self._cursor = clock.wall() - timedelta(minutes=2)
        self._watches: dict[str, _Watch] = {}
        # Terminal jobs a listing showed before anyone waited for them (a fast job whose
        # follower registers after the listing ran): kept briefly, bounded.
        self._recent: OrderedDict[str, RemoteJob] = OrderedDict()
        self._registered = anyio.Event()

    async def wait(
        self,
        job_id: str,
        *,
        deadline: float,
        on_update: Callable[[RemoteJob], Awaitable[None]] | None = None,
        job_class: JobClass = None,
    ) -> RemoteJob:
        """The job once terminal; PollTimeout after `deadline` seconds, JobGone when its
        direct looks answer 404 past the grace. `job_class` names the jobs it is expected
        to take as long as (for the cadence)."""
        early = self._recent.pop(job_id, None)
        if early is not None:
            if on_update is not None:
                await on_update(early)
            return early
        now = self._clock.monotonic()
        watch = _Watch(on_update, job_class, now, now, NotFound(self.lost_grace))
        self._watches[job_id] = watch
        self._registered.set()
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

    def next_delay(self) -> float:
        """Seconds until the next listing, for the jobs waiting now."""
        now = self._clock.monotonic()
        jobs = [InFlight(w.job_class, now - w.started) for w in self._watches.values()]
        return next_listing_delay(self.cadence, self.durations, jobs)

    def _fail_all(self, exc: ApiError) -> None:
        for watch in self._watches.values():
            watch.error = exc
            watch.done.set()

    async def run(self) -> None:
        """Sleep, list, dispatch; forever (cancel it with the batch)."""
        while True:
            if not self._watches:
                self._registered = anyio.Event()
                await self._registered.wait()
            await self._clock.sleep(self.next_delay())
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
        if watch is None:
            if job.status.terminal:
                self._recent[job.job_id] = job
                while len(self._recent) > _RECENT:
                    self._recent.popitem(last=False)
            return
        if watch.done.is_set():
            return
        watch.last_seen = self._clock.monotonic()
        watch.missing.answered()
        if watch.on_update is not None:
            await watch.on_update(job)
        if job.status.terminal:
            self._learn(watch, job)
            watch.result = job
            watch.done.set()

    def _learn(self, watch: _Watch, job: RemoteJob) -> None:
        seconds = server_seconds(job)
        if seconds is None:
            seconds = self._clock.monotonic() - watch.started
        self.durations.add(watch.job_class, seconds)


_RECENT = 4096


def server_seconds(job: RemoteJob) -> float | None:
    """How long a finished job took by the server's own clock (`updatedAt - createdAt`)."""
    if not job.created_at or not job.updated_at:
        return None
    seconds = (parse_iso(job.updated_at) - parse_iso(job.created_at)).total_seconds()
    return seconds if seconds > 0 else None
