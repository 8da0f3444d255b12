"""The budget: reservations that settle, count as spent, or are given back — never leak."""

from __future__ import annotations

import pytest

from runner.batch import Budget, OverBudget


def test_reservations_are_granted_up_to_the_limit() -> None:
    budget = Budget(100.0)
    with budget.reservation(60.0) as a, budget.reservation(40.0) as b:  # exactly the limit
        with pytest.raises(OverBudget), budget.reservation(0.01):
            pass
        a.settle(60.0)
        b.settle(40.0)
    assert budget.spent == 100.0 and budget.reserved == 0.0


def test_a_refused_reservation_holds_nothing_and_says_why() -> None:
    budget = Budget(10.0, spent=4.0)
    with (
        pytest.raises(OverBudget, match=r"~7 CU would pass the budget of 10 \(spent 4"),
        budget.reservation(7.0),
    ):
        pass
    assert budget.reserved == 0.0
    with budget.reservation(6.0) as held:
        held.settle(6.0)
    assert budget.spent == 10.0


def test_without_a_limit_nothing_is_refused_and_the_spend_is_counted() -> None:
    budget = Budget(None)
    with budget.reservation(1e9) as held:
        held.settle(3.0)
    assert budget.spent == 3.0


@pytest.mark.parametrize(("actual", "spent"), [(7.5, 7.5), (None, 10.0), (0.0, 0.0)])
def test_settle_counts_the_reported_cost_or_else_the_price(
    actual: float | None, spent: float
) -> None:
    budget = Budget(100.0)
    with budget.reservation(10.0) as held:
        assert budget.reserved == 10.0
        held.settle(actual)
        assert budget.reserved == 0.0
    assert budget.spent == spent


def test_spent_counts_the_price_when_the_job_may_exist() -> None:
    budget = Budget(100.0)
    with budget.reservation(12.0) as held:
        held.spent()
    assert (budget.spent, budget.reserved) == (12.0, 0.0)


def test_a_block_that_ends_without_settling_gives_the_reservation_back() -> None:
    budget = Budget(10.0)
    with budget.reservation(10.0):
        assert budget.reserved == 10.0
    assert (budget.spent, budget.reserved) == (0.0, 0.0)


def test_an_exception_in_the_block_gives_the_reservation_back() -> None:
    budget = Budget(10.0)
    with pytest.raises(RuntimeError, match="boom"), budget.reservation(10.0):
        raise RuntimeError("boom")
    assert budget.reserved == 0.0


def test_a_reservation_closes_once() -> None:
    budget = Budget(10.0)
    with budget.reservation(5.0) as held:
        held.settle(5.0)
        with pytest.raises(RuntimeError, match="already closed"):
            held.release()
    assert (budget.spent, budget.reserved) == (5.0, 0.0)


def test_settled_costs_limit_later_reservations() -> None:
    budget = Budget(20.0)
    with budget.reservation(10.0) as held:
        held.settle(15.0)
    with pytest.raises(OverBudget), budget.reservation(10.0):
        pass
    with budget.reservation(5.0):
        pass


def test_count_adds_a_cost_no_reservation_covered() -> None:
    budget = Budget(20.0, spent=5.0)
    budget.count(7.0)
    budget.count(None)
    assert budget.spent == 12.0
