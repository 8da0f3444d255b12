"""Poll cadence and the wait loop, on a fake clock that sleeping advances; the list watcher
passing a listing's failure on to the jobs that wait on it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import anyio
import pytest

from runner.clock import Clock
from runner.domain import RemoteJob, RemoteStatus
from runner.errors import AuthError, PermanentApiError, TransientApiError
from runner.polling import (
    CadencePolicy,
    JobGone,
    ListWatcher,
    NotFound,
    PollPolicy,
    PollTimeout,
    next_poll_delay,
    wait_terminal,
)
from tests.helpers.http import FakeTime

DEFAULT = PollPolicy()


@pytest.mark.parametrize(
    ("policy", "polls_done", "expected"),
    [
        (DEFAULT, 0, 2.0),
        (DEFAULT, 1, 3.0),
        (DEFAULT, 2, 4.5),
        (DEFAULT, 3, 6.75),
        (DEFAULT, 4, 10.125),
        (DEFAULT, 5, 15.0),  # 15.1875 capped
        (DEFAULT, 50, 15.0),
        (PollPolicy(initial=1.0, factor=2.0, maximum=5.0), 0, 1.0),
        (PollPolicy(initial=1.0, factor=2.0, maximum=5.0), 2, 4.0),
        (PollPolicy(initial=1.0, factor=2.0, maximum=5.0), 3, 5.0),
        (PollPolicy(initial=3.0, factor=1.0, maximum=10.0), 9, 3.0),  # constant cadence
        (PollPolicy(initial=20.0, maximum=15.0), 0, 15.0),  # the cap wins from the start
    ],
)
def test_next_poll_delay(policy: PollPolicy, polls_done: int, expected: float) -> None:
    assert next_poll_delay(policy, polls_done) == pytest.approx(expected)


def job(raw: str, progress: float = 0.0) -> RemoteJob:
    return RemoteJob("job_1", RemoteStatus.parse(raw), raw, progress)


class FakeApi:
    """Answers with the scripted statuses, then repeats the last one."""

    def __init__(self, time: FakeTime, statuses: Sequence[str]) -> None:
        self.time = time
        self.statuses = list(statuses)
        self.asked_at: list[float] = []

    async def get_job(self, job_id: str) -> RemoteJob:
        assert job_id == "job_1"
        self.asked_at.append(self.time.now)
        index = min(len(self.asked_at), len(self.statuses)) - 1
        return job(self.statuses[index], progress=len(self.asked_at) / 10)


async def wait(
    statuses: Sequence[str], policy: PollPolicy = DEFAULT, **kw: object
) -> tuple[RemoteJob, FakeTime, FakeApi]:
    time = FakeTime()
    api = FakeApi(time, statuses)
    result = await wait_terminal(
        api.get_job,
        "job_1",
        policy=policy,
        clock=time.as_clock(),
        **kw,  # type: ignore[arg-type]
    )
    return result, time, api


@pytest.mark.parametrize(
    ("statuses", "terminal", "polls"),
    [
        (["success"], RemoteStatus.SUCCESS, 1),
        (["queued", "in-progress", "success"], RemoteStatus.SUCCESS, 3),
        (["pending", "warming-up", "finalizing", "failure"], RemoteStatus.FAILURE, 4),
        (["queued", "canceled"], RemoteStatus.CANCELED, 2),
        (["queued", "something-new", "success"], RemoteStatus.SUCCESS, 3),  # unknown: wait
    ],
)
async def test_wait_terminal_returns_the_first_terminal_answer(
    statuses: list[str], terminal: RemoteStatus, polls: int
) -> None:
    result, time, api = await wait(statuses)
    assert result.status is terminal
    assert len(api.asked_at) == polls
    assert time.sleeps == [next_poll_delay(DEFAULT, n) for n in range(polls)]


async def test_unknown_status_keeps_waiting_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="runner.polling.each"):
        result, _, api = await wait(["paused", "paused", "success"])
    assert result.status is RemoteStatus.SUCCESS
    assert len(api.asked_at) == 3
    assert sum("'paused'" in r.getMessage() for r in caplog.records) == 2


async def test_polls_are_spaced_by_the_cadence() -> None:
    _, _, api = await wait(["queued"] * 4 + ["success"])
    assert [t - 1000.0 for t in api.asked_at] == pytest.approx([2.0, 5.0, 9.5, 16.25, 26.375])


async def test_first_delay_replaces_the_initial_wait() -> None:
    _, time, _ = await wait(["queued", "success"], first_delay=0.0)
    assert time.sleeps == [0.0, 3.0]


async def test_on_update_sees_every_answer_in_order() -> None:
    seen: list[tuple[str, float]] = []

    async def on_update(update: RemoteJob) -> None:
        seen.append((update.raw_status, update.progress))

    await wait(["queued", "in-progress", "success"], on_update=on_update)
    assert seen == [("queued", 0.1), ("in-progress", 0.2), ("success", 0.3)]


async def test_deadline_raises_poll_timeout_with_the_last_job() -> None:
    policy = PollPolicy(initial=2.0, factor=1.5, maximum=15.0, deadline=10.0)
    time = FakeTime()
    api = FakeApi(time, ["queued", "in-progress"])
    with pytest.raises(PollTimeout) as caught:
        await wait_terminal(api.get_job, "job_1", policy=policy, clock=time.as_clock())
    assert caught.value.last is not None
    assert caught.value.last.raw_status == "in-progress"
    assert caught.value.last.progress == pytest.approx(0.3)
    assert [t - 1000.0 for t in api.asked_at] == pytest.approx([2.0, 5.0, 9.5])
    assert time.now - 1000.0 <= policy.deadline  # never sleeps past the deadline


async def test_deadline_shorter_than_the_first_wait_times_out_without_asking() -> None:
    policy = PollPolicy(deadline=1.0)
    time = FakeTime()
    api = FakeApi(time, ["success"])
    with pytest.raises(PollTimeout) as caught:
        await wait_terminal(api.get_job, "job_1", policy=policy, clock=time.as_clock())
    assert caught.value.last is None
    assert api.asked_at == []
    assert time.sleeps == []


async def test_a_five_minute_job_costs_about_twenty_polls() -> None:
    time = FakeTime()

    async def get_job(job_id: str) -> RemoteJob:
        return job("success" if time.now - 1000.0 >= 300 else "in-progress")

    calls = 0

    async def counted(job_id: str) -> RemoteJob:
        nonlocal calls
        calls += 1
        return await get_job(job_id)

    await wait_terminal(counted, "job_1", policy=DEFAULT, clock=time.as_clock())
    assert 18 <= calls <= 25


async def test_errors_of_get_job_propagate() -> None:
    time = FakeTime()

    async def broken(job_id: str) -> RemoteJob:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError, match="gone"):
        await wait_terminal(broken, "job_1", policy=DEFAULT, clock=time.as_clock())


def test_poll_timeout_message() -> None:
    assert "deadline" in str(PollTimeout(None))


# -- outages that must not end or hang a run ------------------------------------------------


async def test_polling_rides_out_transient_errors_until_the_deadline() -> None:
    answers: list[RemoteJob | Exception] = [TransientApiError("503"), TransientApiError("503"),
                                            job("success")]
    time = FakeTime()

    async def get_job(_: str) -> RemoteJob:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    final = await wait_terminal(get_job, "job_1", policy=PollPolicy(1, 2, 4, 100),
                                clock=time.as_clock())
    assert final.status is RemoteStatus.SUCCESS and answers == []


async def test_watcher_passes_an_auth_failure_to_every_waiting_job() -> None:
    async def listing(_: str) -> AsyncIterator[RemoteJob]:
        raise AuthError("401 Unauthorized", status=401)
        yield  # pragma: no cover

    async def get_job(job_id: str) -> RemoteJob:
        assert job_id == "job_1"
        return job("in-progress")

    watcher = ListWatcher(listing, get_job, clock=Clock(monotonic=anyio.current_time),
                          cadence=CadencePolicy(min_interval=0.01))
    async with anyio.create_task_group() as tg:
        tg.start_soon(watcher.run)
        with pytest.raises(AuthError):
            await watcher.wait("job_1", deadline=5)
        tg.cancel_scope.cancel()


# -- a job the API does not know (404): lost after the grace, never an hour's wait ----------

NOT_FOUND = PermanentApiError("GET /v1/jobs/job_1: HTTP 404: Job job_1 not found.",
                              status=404)


def scripted(time: FakeTime, answers: list[RemoteJob | Exception]) -> Callable[[str], Any]:
    async def get_job(_: str) -> RemoteJob:
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return get_job


async def test_a_job_answered_404_past_the_grace_is_gone() -> None:
    time = FakeTime()
    policy = PollPolicy(initial=1.0, factor=2.0, maximum=10.0, deadline=3600.0, lost_grace=30.0)
    with pytest.raises(JobGone) as caught:
        await wait_terminal(scripted(time, [NOT_FOUND]), "job_1", policy=policy,
                            clock=time.as_clock())
    assert caught.value.seconds >= 30.0
    assert time.now - 1000.0 < 60.0  # the grace, not the 3,600 s job timeout
    assert "404 for job job_1" in str(caught.value)


async def test_an_answer_between_404s_starts_the_grace_again() -> None:
    time = FakeTime()
    policy = PollPolicy(initial=10.0, factor=1.0, maximum=10.0, deadline=3600.0, lost_grace=25.0)
    answers: list[RemoteJob | Exception] = [NOT_FOUND, NOT_FOUND, job("queued"), NOT_FOUND,
                                            NOT_FOUND, job("success")]
    final = await wait_terminal(scripted(time, answers), "job_1", policy=policy,
                                clock=time.as_clock())
    assert final.status is RemoteStatus.SUCCESS


async def test_other_permanent_errors_still_propagate() -> None:
    time = FakeTime()
    with pytest.raises(PermanentApiError, match="400"):
        await wait_terminal(scripted(time, [PermanentApiError("400", status=400)]), "job_1",
                            policy=DEFAULT, clock=time.as_clock())


@pytest.mark.parametrize(
    ("grace", "times", "gone_at"),
    [
        (10.0, [0.0, 5.0, 10.0], 10.0),
        (10.0, [0.0, 9.9], None),
        (0.0, [3.0], 3.0),
    ],
)
def test_not_found_counts_from_the_first_404(
    grace: float, times: list[float], gone_at: float | None
) -> None:
    missing = NotFound(grace)
    gone = [missing.gone("job_1", t) for t in times]
    assert (gone[-1] is not None) == (gone_at is not None)
    assert all(g is None for g in gone[:-1])
    missing.answered()
    assert missing.since is None


async def test_watcher_calls_a_job_gone_when_its_direct_looks_answer_404(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def listing(_: str) -> AsyncIterator[RemoteJob]:
        return
        yield  # pragma: no cover

    async def get_job(_: str) -> RemoteJob:
        raise NOT_FOUND

    watcher = ListWatcher(listing, get_job, clock=Clock(monotonic=anyio.current_time),
                          cadence=CadencePolicy(min_interval=0.01), fallback=0.02,
                          lost_grace=0.1)
    with caplog.at_level(logging.WARNING, logger="runner.polling.listing"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run)
            with anyio.fail_after(5), pytest.raises(JobGone):
                await watcher.wait("job_1", deadline=3600)
            tg.cancel_scope.cancel()
    assert not [r for r in caplog.records if "listing jobs failed" in r.getMessage()]


async def test_watcher_names_the_direct_get_when_it_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def listing(_: str) -> AsyncIterator[RemoteJob]:
        return
        yield  # pragma: no cover

    async def get_job(_: str) -> RemoteJob:
        raise TransientApiError("GET /v1/jobs/job_1: HTTP 503")

    watcher = ListWatcher(listing, get_job, clock=Clock(monotonic=anyio.current_time),
                          cadence=CadencePolicy(min_interval=0.01), fallback=0.0)
    with caplog.at_level(logging.WARNING, logger="runner.polling.listing"):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watcher.run)
            with pytest.raises(PollTimeout):
                await watcher.wait("job_1", deadline=0.1)
            tg.cancel_scope.cancel()
    messages = [r.getMessage() for r in caplog.records]
    assert any("asking the API about job job_1 failed" in m for m in messages), messages
    assert not any("listing jobs failed" in m for m in messages)
