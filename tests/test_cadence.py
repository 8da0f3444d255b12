"""The listing cadence: a fraction of the jobs' learned duration, bounded; the same batch at
two time scales costs the same listings per job and the same relative delay."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import pytest

from runner.clock import Clock, format_iso
from runner.domain import RemoteJob, RemoteStatus
from runner.polling import (
    CadencePolicy,
    Durations,
    InFlight,
    ListWatcher,
    next_listing_delay,
    server_seconds,
)
from tests.helpers.http import FakeTime

POLICY = CadencePolicy(fraction=0.1, unknown_fraction=0.25, min_interval=0.25,
                       max_interval=15.0)


def learned(**classes: list[float]) -> Durations:
    durations = Durations()
    for name, seconds in classes.items():
        for value in seconds:
            durations.add(name, value)
    return durations


@pytest.mark.parametrize(
    ("durations", "jobs", "delay"),
    [
        # Nothing in flight: nothing to list for.
        (learned(), [], 15.0),
        # Nothing known yet: a quarter of the oldest job's age, within the bounds.
        (learned(), [InFlight("a", 0.0)], 0.25),
        (learned(), [InFlight("a", 8.0), InFlight("a", 2.0)], 2.0),
        (learned(), [InFlight("a", 600.0)], 15.0),
        # Known: a tenth of the typical duration; the fastest class in flight sets it.
        (learned(a=[20.0, 20.0, 20.0]), [InFlight("a", 25.0)], 2.0),
        (learned(a=[20.0] * 3, b=[200.0] * 3), [InFlight("a", 30.0), InFlight("b", 30.0)], 2.0),
        # Quiet time: every job in flight is younger than its class has ever taken.
        (learned(a=[60.0] * 20), [InFlight("a", 10.0), InFlight("a", 20.0)], 15.0),
        (learned(a=[30.0] * 20), [InFlight("a", 25.0)], 5.0),
        # Very short jobs: the request budget bounds it from below.
        (learned(a=[1.0, 2.0, 3.0]), [InFlight("a", 0.5)], 0.5),
        (learned(a=[0.1] * 5), [InFlight("a", 0.2)], 0.25),
    ],
)
def test_next_listing_delay(durations: Durations, jobs: list[InFlight], delay: float) -> None:
    assert next_listing_delay(POLICY, durations, jobs) == pytest.approx(delay)


def test_durations_keep_the_newest_and_give_median_and_a_low_quantile() -> None:
    durations = Durations(keep=100)
    for value in range(1, 201):  # 1..200; only 101..200 are kept
        durations.add("a", float(value))
    assert durations.typical("a") == 151.0
    assert durations.shortest("a") == 106.0
    durations.add("a", 0.0)  # not a duration: ignored
    assert durations.typical("b") is None and durations.shortest("b") is None


def test_server_seconds_come_from_the_servers_own_timestamps() -> None:
    done = RemoteJob("j", RemoteStatus.SUCCESS, "success", 1.0,
                     created_at="2030-01-01T00:00:00Z", updated_at="2030-01-01T00:00:42.5Z")
    assert server_seconds(done) == 42.5
    assert server_seconds(RemoteJob("j", RemoteStatus.SUCCESS, "success", 1.0)) is None


@dataclass
class _FakeJob:
    job_id: str
    created: float
    ends: float


class FakeAccount:
    """Jobs that end at known times on a fake clock, listed as `updatedAfter` would."""

    def __init__(self, time: FakeTime) -> None:
        self.time = time
        self.jobs: dict[str, _FakeJob] = {}
        self.listings = 0

    def _iso(self, moment: float) -> str:
        return format_iso(self.time.wall() - (self.time.now - moment) * _SECOND)

    def job(self, fake: _FakeJob) -> RemoteJob:
        done = self.time.now >= fake.ends
        updated = fake.ends if done else fake.created
        status = RemoteStatus.SUCCESS if done else RemoteStatus.IN_PROGRESS
        return RemoteJob(fake.job_id, status, status.value, 1.0 if done else 0.5,
                         created_at=self._iso(fake.created), updated_at=self._iso(updated))

    async def list_updated(self, since: str) -> AsyncIterator[RemoteJob]:
        self.listings += 1
        await anyio.lowlevel.checkpoint()
        for fake in list(self.jobs.values()):
            job = self.job(fake)
            if job.updated_at is not None and job.updated_at > since:
                yield job

    async def get_job(self, job_id: str) -> RemoteJob:
        return self.job(self.jobs[job_id])


_SECOND = __import__("datetime").timedelta(seconds=1)


async def run_batch(scale: float, jobs: int = 60, places: int = 10) -> tuple[float, float]:
    """A batch of `jobs` (10-30 s times `scale`) on `places`, followed by one watcher.

    Returns (listings per job, mean detection delay / mean duration)."""
    time = FakeTime()

    async def sleep(seconds: float) -> None:
        # Everyone woken at this instant runs at this instant; then time jumps.
        await anyio.wait_all_tasks_blocked()
        await time.sleep(seconds)

    clock = Clock(monotonic=time.clock, wall=time.wall, sleep=sleep)
    account = FakeAccount(time)
    watcher = ListWatcher(account.list_updated, account.get_job, clock=clock,
                          cadence=CadencePolicy(max_interval=1e6), fallback=1e9)
    rng = random.Random(7)
    delays: list[float] = []
    durations: list[float] = []
    free = anyio.Semaphore(places)

    async def one(index: int) -> None:
        duration = rng.uniform(10.0, 30.0) * scale
        fake = _FakeJob(f"job_{index}", time.now, time.now + duration)
        account.jobs[fake.job_id] = fake
        await watcher.wait(fake.job_id, deadline=1e9, job_class="t2v")
        delays.append(time.now - fake.ends)
        durations.append(duration)
        free.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run)
        async with anyio.create_task_group() as batch:
            for index in range(jobs):
                await free.acquire()
                batch.start_soon(one, index)
        tg.cancel_scope.cancel()
    return account.listings / jobs, (sum(delays) / jobs) / (sum(durations) / jobs)


async def test_the_same_batch_at_two_time_scales_costs_the_same() -> None:
    with anyio.fail_after(30):
        short = await run_batch(scale=1.0)
        long = await run_batch(scale=10.0)
    listings_short, delay_short = short
    listings_long, delay_long = long
    assert listings_long == pytest.approx(listings_short, rel=0.2)
    assert delay_long == pytest.approx(delay_short, rel=0.25)
    assert delay_short < 0.08  # a job is noticed within a few percent of its length
    assert listings_short < 2.0  # one listing serves many jobs
