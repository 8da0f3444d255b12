"""Admission: the submit-rate bucket (pure), its async shell on a fake clock, per-model limits
and the slots that bound jobs in flight."""

from __future__ import annotations

import anyio
import pytest

from runner.batch import (
    Admission,
    Bucket,
    Gauge,
    ModelLimiters,
    RateLimiter,
    Slots,
    opening_window,
    reserve_slot,
)
from runner.batch.admission import Ticket
from runner.clock import Clock
from tests.helpers.http import FakeTime


@pytest.mark.parametrize(
    ("next_free", "now", "interval", "expected_next", "expected_wait"),
    [
        (0.0, 10.0, 0.5, 10.5, 0.0),  # idle bucket: go now
        (10.5, 10.0, 0.5, 11.0, 0.5),  # the slot is taken: wait for the next
        (10.5, 10.5, 0.5, 11.0, 0.0),  # exactly on time
        (12.0, 10.0, 0.5, 12.5, 2.0),  # a queue of reservations ahead
        (10.5, 20.0, 0.5, 20.5, 0.0),  # long idle: no burst credit is saved up
        (5.0, 5.0, 0.0, 5.0, 0.0),  # zero interval
    ],
)
def test_reserve_slot(
    next_free: float, now: float, interval: float, expected_next: float, expected_wait: float
) -> None:
    bucket, wait = reserve_slot(Bucket(next_free), now, interval)
    assert bucket == Bucket(pytest.approx(expected_next))
    assert wait == pytest.approx(expected_wait)


def test_reserve_slot_leaves_the_given_bucket_alone() -> None:
    bucket = Bucket(1.0)
    reserve_slot(bucket, 0.0, 1.0)
    assert bucket == Bucket(1.0)




async def test_rate_limiter_spaces_sequential_acquisitions() -> None:
    time = FakeTime(start=100.0)
    limiter = RateLimiter(4.0, clock=time.as_clock())
    stamps = []
    for _ in range(5):
        await limiter.acquire()
        stamps.append(time.now - 100.0)
    assert stamps == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


async def test_rate_limiter_does_not_wait_after_a_pause() -> None:
    time = FakeTime(start=100.0)
    limiter = RateLimiter(1.0, clock=time.as_clock())
    await limiter.acquire()
    time.now += 10.0  # idle for a while
    await limiter.acquire()
    assert time.sleeps == []


async def test_concurrent_acquirers_get_distinct_slots() -> None:
    time = FakeTime(start=100.0)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)  # the clock stands still: all ask at once
        await anyio.lowlevel.checkpoint()

    limiter = RateLimiter(2.0, clock=Clock(monotonic=time.clock, sleep=sleep))
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(limiter.acquire)
    assert sorted(waits) == pytest.approx([0.5, 1.0, 1.5])  # the first goes at once


@pytest.mark.parametrize("per_second", [None, 0.0])
async def test_rate_limiter_without_a_rate_never_waits(per_second: float | None) -> None:
    time = FakeTime(start=100.0)
    limiter = RateLimiter(per_second, clock=time.as_clock())
    for _ in range(100):
        await limiter.acquire()
    assert time.sleeps == []


def test_model_limiters_limit_only_the_models_given() -> None:
    limiters = ModelLimiters({"model_a": 2, "model_b": 1})
    a = limiters.get("model_a")
    b = limiters.get("model_b")
    assert a is not None and (a.limit, a.count) == (2, 0)
    assert b is not None and (b.limit, b.count) == (1, 0)
    assert limiters.get("model_c") is None
    assert limiters.get("model_a") is a  # one limiter per model, shared by its jobs


def test_model_limiters_without_limits() -> None:
    assert ModelLimiters({}).get("model_a") is None


async def test_slots_bound_jobs_in_flight() -> None:
    slots = Slots(2)
    active = 0
    seen: list[int] = []

    async def job() -> None:
        nonlocal active
        await slots.acquire()
        try:
            active += 1
            seen.append(active)
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            active -= 1
        finally:
            slots.release()

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(job)
    assert max(seen) == 2
    assert (slots.count, slots.peak) == (0, 2)


async def test_a_slot_taken_by_one_task_is_released_by_another() -> None:
    slots = Slots(1)
    await slots.acquire()  # the feeder takes it
    got_second = anyio.Event()

    async def second() -> None:
        await slots.acquire()
        got_second.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        assert not got_second.is_set()  # full
        slots.release()  # the job's task gives it back
        await got_second.wait()
    assert slots.count == 1


async def test_release_wakes_only_as_many_waiters_as_there_are_slots() -> None:
    slots = Slots(1)
    await slots.acquire()
    holders: list[int] = []

    async def waiter(n: int) -> None:
        await slots.acquire()
        holders.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(waiter, n)
        await anyio.wait_all_tasks_blocked()
        slots.release()
        await anyio.wait_all_tasks_blocked()
        assert len(holders) == 1  # all woke, one got the slot, the others wait again
        assert slots.count == 1
        for _ in range(2):
            slots.release()
            await anyio.wait_all_tasks_blocked()
    assert len(holders) == 3
    assert slots.peak == 1


async def test_force_acquire_counts_past_the_limit_and_blocks_new_acquirers() -> None:
    slots = Slots(2)
    for _ in range(3):  # a resumed run re-attaches three jobs already at the API
        slots.force_acquire()
    assert (slots.count, slots.peak) == (3, 3)
    acquired = anyio.Event()

    async def newcomer() -> None:
        await slots.acquire()
        acquired.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(newcomer)
        slots.release()
        await anyio.wait_all_tasks_blocked()
        assert not acquired.is_set()  # 2 still held: at the limit
        slots.release()
        await acquired.wait()
    assert slots.count == 2


def admission(time: FakeTime, ceiling: int = 8) -> Admission:
    clock = time.as_clock()
    return Admission(window=opening_window(ceiling, ceiling), workers=ceiling * 2,
                     model_limits={}, rate=RateLimiter(None, clock=clock), clock=clock)


async def test_a_refusal_holds_new_posts_for_the_servers_retry_after() -> None:
    time = FakeTime()
    gate = admission(time)
    first = await gate.place("m")
    first.release()  # the refused POST gave its place back
    gate.refused(retry_after=2.5)
    started = time.now
    second = await gate.place("m")
    assert time.now - started == pytest.approx(2.5)
    second.release()
    third = await gate.place("m")  # the pause is over: no more waiting
    assert time.now - started == pytest.approx(2.5)
    third.release()


async def test_a_refusal_without_a_delay_waits_only_for_a_place() -> None:
    time = FakeTime()
    gate = admission(time, ceiling=4)
    held = [await gate.place("m") for _ in range(3)]
    gate.refused(retry_after=None)
    gate.refused(retry_after=None)  # twice at 3: the account's cap; the window shrinks
    assert gate.gauge().limit == 3 and gate.gauge().capped
    got: list[Ticket] = []

    async def take() -> None:
        got.append(await gate.place("m"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.01)
        assert got == []  # no place until a job ends
        held.pop().release()
    assert len(got) == 1 and time.sleeps == []
    for ticket in [*held, *got]:
        ticket.release()


async def test_accepted_posts_grow_the_window_and_wake_waiters() -> None:
    time = FakeTime()
    gate = admission(time, ceiling=4)
    held = [await gate.place("m") for _ in range(2)]
    gate.refused(retry_after=None)
    gate.refused(retry_after=None)
    assert gate.gauge().limit == 2
    got: list[Ticket] = []

    async def take() -> None:
        got.append(await gate.place("m"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.01)
        for _ in range(3):
            gate.accepted()  # about one window of acceptances: one more place
    assert gate.gauge().limit == 3 and len(got) == 1
    assert gate.gauge() == Gauge(in_flight=3, limit=3, asked=4, capped=True, refusals=2,
                                 peak=3)
    for ticket in [*held, *got]:
        ticket.release()
