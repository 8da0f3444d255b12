"""Control: halts, drain, the failure limit, and which errors call for a halt."""

from __future__ import annotations

import pytest

from runner.batch import Control, FailureLimit, HaltReason, halt_reason_for
from runner.errors import (
    EXIT_USAGE,
    AuthError,
    CreditError,
    PermanentApiError,
    TransientApiError,
    UsageError,
)


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
    assert HaltReason.DISK.value == "the output folder could not be written"
    assert HaltReason.STORE.value == "the object store could not be written"
    assert {r.name for r in HaltReason} == {"AUTH", "CREDIT", "FAILURES", "BUDGET", "DISK",
                                            "STORE", "INTERRUPTED"}


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (AuthError("401 bad key"), HaltReason.AUTH),
        (CreditError("402 no credits"), HaltReason.CREDIT),
        (PermanentApiError("422 bad body"), None),
        (TransientApiError("503"), None),
        (UsageError("bad manifest"), None),
        (ValueError("a bug"), None),
    ],
)
def test_halt_reason_for(exc: BaseException, reason: HaltReason | None) -> None:
    assert halt_reason_for(exc) is reason


def test_control_allows_submissions_until_a_drain() -> None:
    control = Control()
    assert control.submissions_allowed and control.ending is None
    control.drain()
    assert not control.submissions_allowed
    assert control.ending is HaltReason.INTERRUPTED


def test_the_first_halt_wins_and_is_noted_once() -> None:
    notes: list[str] = []
    control = Control(note=notes.append)
    control.halt_for(HaltReason.BUDGET, "job a would cost 10 CU")
    control.halt_for(HaltReason.AUTH, "401")
    assert control.halt is HaltReason.BUDGET and control.ending is HaltReason.BUDGET
    assert notes == [f"halting: {HaltReason.BUDGET.value} (job a would cost 10 CU)"]


def test_a_halt_outlasts_a_drain_in_how_the_run_ends() -> None:
    control = Control()
    control.drain()
    control.halt_for(HaltReason.CREDIT, "402")
    assert control.ending is HaltReason.CREDIT


def test_halt_on_halts_only_for_auth_and_credit() -> None:
    control = Control()
    assert not control.halt_on(TransientApiError("503"))
    assert control.submissions_allowed
    assert control.halt_on(CreditError("402 out of credits"))
    assert control.halt is HaltReason.CREDIT


def test_counting_failures_halts_at_the_limit() -> None:
    notes: list[str] = []
    control = Control(total=10, limit=FailureLimit(count=2), note=notes.append)
    control.count_failure()
    assert control.submissions_allowed
    control.count_failure()
    assert control.halt is HaltReason.FAILURES and control.failures == 2
    assert notes == [f"halting: {HaltReason.FAILURES.value} (2 of 10 jobs have failed in this "
                     "folder, 2 of them in this run; the limit is 2)"]


@pytest.mark.parametrize(
    ("before", "limit", "halted_at_start", "halted_after_one"),
    [
        (0, FailureLimit(count=5), False, False),
        (4, FailureLimit(count=5), False, True),
        (5, FailureLimit(count=5), True, True),
        (35, FailureLimit(count=5), True, True),
        (9, FailureLimit(percent=10.0), False, True),  # 10 % of 100
        (10, FailureLimit(percent=10.0), True, True),
        (3, FailureLimit(), False, False),
    ],
)
def test_failures_count_over_the_folder(
    before: int, limit: FailureLimit, halted_at_start: bool, halted_after_one: bool
) -> None:
    notes: list[str] = []
    control = Control(total=100, limit=limit, note=notes.append, failed_before=before)
    assert (control.halt is HaltReason.FAILURES) is halted_at_start
    control.count_failure()
    assert (control.halt is HaltReason.FAILURES) is halted_after_one
    if halted_at_start:
        assert f"{before} of 100 jobs have failed in this folder, 0 of them in this run" in notes[0]
