"""Table tests of the backoff maths, the retry rules and the run-wide pause."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from runner.api import Pacer, RetryPolicy, next_retry_delay, retry_hint_from_headers, should_retry

POLICY = RetryPolicy()
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("retries", "hint", "rand", "expected"),
    [
        (0, None, 0.0, 0.5),
        (0, None, 1.0, 0.375),  # jitter only shortens: 75 % at worst
        (1, None, 0.0, 1.0),
        (2, None, 0.0, 2.0),
        (3, None, 0.0, 4.0),
        (4, None, 0.0, 8.0),
        (10, None, 0.0, 8.0),  # capped at max_delay
        (10, None, 0.5, 7.0),
        (0, 0.2, 0.9, 0.2),  # server hint wins
        (3, 60.0, 0.0, 60.0),  # the largest hint obeyed
        (0, 120.0, 0.0, 0.5),  # too long: ignored, like the SDK
        (0, 0.0, 0.0, 0.5),  # zero or negative: ignored
        (1, -3.0, 0.0, 1.0),
    ],
)
def test_next_retry_delay(retries: int, hint: float | None, rand: float, expected: float) -> None:
    assert next_retry_delay(POLICY, retries, hint, rand) == pytest.approx(expected)


def test_next_retry_delay_follows_a_custom_policy() -> None:
    policy = RetryPolicy(initial_delay=1.0, max_delay=3.0, jitter=0.0, max_server_delay=5.0)
    assert [next_retry_delay(policy, n, None, 0.9) for n in range(4)] == [1.0, 2.0, 3.0, 3.0]
    assert next_retry_delay(policy, 0, 6.0, 0.0) == 1.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after-ms": "200"}, 0.2),
        ({"Retry-After-Ms": "1500.5"}, 1.5005),  # case-insensitive on plain dicts too
        ({"retry-after-ms": "200", "retry-after": "9"}, 0.2),  # ms first
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),  # unreadable ms: fall through
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": " 2.5 "}, 2.5),
        ({"retry-after": "120"}, 120.0),  # returned as is; next_retry_delay ignores it
        ({"retry-after": "Wed, 01 Jan 2025 12:00:07 GMT"}, 7.0),
        ({"retry-after": "Wed, 01 Jan 2025 11:59:00 GMT"}, -60.0),
        ({"retry-after": "tomorrow"}, None),
        ({"retry-after": ""}, None),
    ],
)
def test_retry_hint_from_headers(headers: dict[str, str], expected: float | None) -> None:
    hint = retry_hint_from_headers(headers, NOW)
    if expected is None:
        assert hint is None
    else:
        assert hint == pytest.approx(expected)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (None, {}, True),  # transport failure
        (408, {}, True),
        (409, {}, True),
        (429, {}, True),
        (500, {}, True),
        (503, {}, True),
        (400, {}, False),
        (401, {}, False),
        (402, {}, False),
        (403, {}, False),
        (404, {}, False),
        (422, {}, False),
        (409, {"x-should-retry": "false"}, False),  # the header overrides the status
        (500, {"X-Should-Retry": "False"}, False),
        (400, {"x-should-retry": "true"}, True),
        (400, {"x-should-retry": "maybe"}, False),  # unreadable: the status decides
        (None, {"x-should-retry": "false"}, False),
    ],
)
def test_should_retry(status: int | None, headers: dict[str, str], expected: bool) -> None:
    assert should_retry(status, headers) is expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_starts_open_and_counts_down() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    assert pacer.delay_now() == 0.0
    pacer.pause_for(2.0)
    assert pacer.delay_now() == 2.0
    clock.now += 1.5
    assert pacer.delay_now() == pytest.approx(0.5)
    clock.now += 1.0
    assert pacer.delay_now() == 0.0


def test_pacer_pauses_only_extend() -> None:
    clock = FakeClock()
    pacer = Pacer(clock)
    pacer.pause_for(5.0)
    pacer.pause_for(1.0)  # a shorter pause arriving later does not cut the first
    assert pacer.delay_now() == 5.0
    clock.now += 1.0
    pacer.pause_for(10.0)
    assert pacer.delay_now() == 10.0
    pacer.pause_for(0.0)
    pacer.pause_for(-1.0)
    assert pacer.delay_now() == 10.0
