"""Reasons to stop: the failure limit's parsing and threshold, and the budget's bookkeeping."""

from __future__ import annotations

import pytest

from runner.batch.control import Budget, FailureLimit, HaltReason
from runner.errors import EXIT_USAGE, UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, FailureLimit()),
        ("5", FailureLimit(count=5)),
        ("1", FailureLimit(count=1)),
        (" 12 ", FailureLimit(count=12)),
        ("10%", FailureLimit(percent=10.0)),
        ("0.5%", FailureLimit(percent=0.5)),
        ("100%", FailureLimit(percent=100.0)),
        (" 25% ", FailureLimit(percent=25.0)),
    ],
)
def test_failure_limit_parse(text: str | None, expected: FailureLimit) -> None:
    assert FailureLimit.parse(text) == expected


@pytest.mark.parametrize(
    "text", ["", "0", "-3", "2.5", "ten", "%", "0%", "-5%", "101%", "nan%", "inf%", "5%%"]
)
def test_failure_limit_parse_refuses_with_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        FailureLimit.parse(text)
    assert repr(text) in str(caught.value)
    assert caught.value.hint is not None and "--max-failures" in caught.value.hint
    assert caught.value.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("limit", "failures", "total", "expected"),
    [
        (FailureLimit(), 1000, 1000, False),  # no limit
        (FailureLimit(count=3), 0, 10, False),
        (FailureLimit(count=3), 2, 10, False),
        (FailureLimit(count=3), 3, 10, True),
        (FailureLimit(count=3), 4, 10, True),
        (FailureLimit(count=1), 1, 0, True),  # a count needs no total
        (FailureLimit(percent=10.0), 0, 100, False),
        (FailureLimit(percent=10.0), 9, 100, False),
        (FailureLimit(percent=10.0), 10, 100, True),
        (FailureLimit(percent=10.0), 1, 3, True),  # 33 % of a small run
        (FailureLimit(percent=50.0), 1, 3, False),
        (FailureLimit(percent=50.0), 2, 4, True),
        (FailureLimit(percent=100.0), 2, 3, False),
        (FailureLimit(percent=100.0), 3, 3, True),
        (FailureLimit(percent=10.0), 5, 0, False),  # no jobs: no percentage
        (FailureLimit(count=5, percent=10.0), 5, 1000, True),  # either limit stops
        (FailureLimit(count=5, percent=10.0), 2, 10, True),
        (FailureLimit(count=5, percent=10.0), 2, 100, False),
    ],
)
def test_failure_limit_reached(
    limit: FailureLimit, failures: int, total: int, expected: bool
) -> None:
    assert limit.reached(failures, total) is expected


def test_halt_reasons_read_as_sentences() -> None:
    assert HaltReason.BUDGET.value == "the next job would pass the budget"
    assert {r.name for r in HaltReason} == {"AUTH", "CREDIT", "FAILURES", "BUDGET", "INTERRUPTED"}


def test_budget_reserves_up_to_the_limit() -> None:
    budget = Budget(100.0)
    assert budget.try_reserve(60.0)
    assert budget.try_reserve(40.0)  # exactly the limit is allowed
    assert not budget.try_reserve(0.01)
    assert (budget.spent, budget.reserved) == (0.0, 100.0)


def test_a_refused_reservation_reserves_nothing() -> None:
    budget = Budget(10.0)
    assert not budget.try_reserve(11.0)
    assert budget.reserved == 0.0
    assert budget.try_reserve(10.0)


def test_budget_without_a_limit_always_reserves() -> None:
    budget = Budget(None)
    for _ in range(10):
        assert budget.try_reserve(1e9)
    assert budget.reserved == 1e10


def test_budget_counts_what_was_spent_before() -> None:
    budget = Budget(100.0, spent=90.0)
    assert not budget.try_reserve(11.0)
    assert budget.try_reserve(10.0)


@pytest.mark.parametrize(
    ("actual", "spent"),
    [
        (7.0, 7.0),  # the API's figure wins
        (12.5, 12.5),  # even above the estimate
        (0.0, 0.0),  # free (a discount)
        (None, 10.0),  # no figure: the estimate is what we count
    ],
)
def test_settle_replaces_the_reservation_with_the_cost(actual: float | None, spent: float) -> None:
    budget = Budget(100.0)
    assert budget.try_reserve(10.0)
    budget.settle(10.0, actual)
    assert (budget.spent, budget.reserved) == (spent, 0.0)


def test_settled_costs_limit_later_reservations() -> None:
    budget = Budget(20.0)
    assert budget.try_reserve(10.0)
    budget.settle(10.0, 15.0)
    assert not budget.try_reserve(10.0)
    assert budget.try_reserve(5.0)


def test_release_gives_the_reservation_back() -> None:
    budget = Budget(10.0)
    assert budget.try_reserve(10.0)
    budget.release(10.0)
    assert (budget.spent, budget.reserved) == (0.0, 0.0)
    assert budget.try_reserve(10.0)


def test_reserved_never_goes_negative() -> None:
    budget = Budget(10.0)
    budget.release(5.0)
    assert budget.reserved == 0.0
    budget.settle(5.0, 1.0)
    assert (budget.spent, budget.reserved) == (1.0, 0.0)
