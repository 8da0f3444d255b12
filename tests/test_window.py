"""The admission window: slow start, shrink to what the account holds, grow back by one."""

from __future__ import annotations

import pytest

from runner.batch import Window, after_acceptance, after_refusal, opening_window


def test_slow_start_doubles_each_round_up_to_the_ceiling() -> None:
    window = opening_window(40)
    assert window.limit == 4 and not window.capped
    sizes = []
    for _ in range(40):
        window = after_acceptance(window)
        sizes.append(window.limit)
    assert sizes[:4] == [5, 6, 7, 8]  # one place per accepted POST: a round doubles it
    assert window.limit == 40 and not window.capped  # never above --concurrency


def refused_twice(window: Window, in_flight: int) -> Window:
    return after_refusal(after_refusal(window, in_flight), in_flight)


def test_a_second_refusal_at_the_same_level_shrinks_to_the_jobs_the_account_holds() -> None:
    window = after_refusal(Window(40, 24.0), in_flight=8)
    assert (window.limit, window.refused, window.capped) == (24, 1, False)  # a lone 429
    window = after_refusal(window, in_flight=9)  # about the same level: a cap
    assert (window.limit, window.refused, window.capped) == (9, 2, True)


def test_refusals_at_different_levels_are_a_passing_rate_limit_not_a_cap() -> None:
    window = Window(50, 50.0)
    for in_flight in (12, 31, 44, 20, 38):
        window = after_refusal(window, in_flight)
    assert window.limit == 50 and not window.capped


def test_a_refusal_never_grows_the_window_nor_goes_below_one() -> None:
    assert refused_twice(Window(40, 5.0), in_flight=30).limit == 5
    assert refused_twice(Window(40, 5.0), in_flight=0).limit == 1


def test_after_a_refusal_it_grows_by_one_place_per_window_of_acceptances() -> None:
    window = refused_twice(Window(40, 16.0), in_flight=8)
    accepted = 0
    while window.limit == 8:
        window = after_acceptance(window)
        accepted += 1
    assert window.limit == 9 and 8 <= accepted <= 9  # about one window of acceptances


def test_probing_a_steady_cap_refuses_about_once_per_cap_jobs() -> None:
    cap, window, refusals, created = 8, opening_window(40), 0, 0
    in_flight = 0
    for _ in range(2000):  # each step: one POST; the account holds at most `cap`
        if in_flight >= window.limit:
            in_flight -= 1  # a job ends
            continue
        if in_flight >= cap:
            window = after_refusal(window, in_flight)
            refusals += 1
            continue
        window = after_acceptance(window)
        in_flight += 1
        created += 1
    assert refusals / created <= 0.3  # a probe costs two: one unconfirmed, one confirming
    assert window.limit in (cap, cap + 1)


@pytest.mark.parametrize(("cap", "ceiling", "limit", "capped"),
                         [(8, 40, 8, True), (60, 40, 40, False), (None, 40, 4, False)])
def test_the_plan_cap_opens_the_window_when_the_api_tells_it(
    cap: int | None, ceiling: int, limit: int, capped: bool
) -> None:
    window = opening_window(ceiling, cap)
    assert (window.limit, window.capped) == (limit, capped)
