"""The run over time (`runner.views.timeline`) and its drawing: in flight, completions,
refusals at the account's cap, per-job waits, percentiles, and the SVG's columns."""

from __future__ import annotations

from typing import Any

import pytest

from runner.ledger import (
    Downloaded,
    Event,
    Finished,
    Intended,
    NotSubmitted,
    Outcome,
    PollFailed,
    Rejected,
    Submitted,
    TimedOut,
)
from runner.views import (
    JobTiming,
    Timeline,
    bucket_peaks,
    cumulative,
    held_level,
    percentile,
    summarize,
    timeline_of,
    timeline_svg,
)

V21 = "model_kling-v2-1-pro"
T0 = 1_735_732_800.0  # 2025-01-01T12:00:00Z


def ts(second: float) -> str:
    whole, frac = divmod(second, 1)
    return f"2025-01-01T12:{int(whole) // 60:02d}:{int(whole) % 60:02d}.{round(frac * 1000):03d}Z"


def intent(job: str, at: float) -> Intended:
    return Intended(job=job, ts=ts(at), attempt=1, model=V21)


def sub(job: str, at: float) -> Submitted:
    return Submitted(job=job, ts=ts(at), job_id=f"job_{job}", model=V21, attempt=1)


def done(job: str, at: float, outcome: Outcome = Outcome.SUCCEEDED) -> Finished:
    return Finished(job=job, ts=ts(at), outcome=outcome, job_id=f"job_{job}")


def got(job: str, at: float) -> Downloaded:
    return Downloaded(job=job, ts=ts(at), asset_id="a", path=f"videos/{job}.mp4", sha256="0",
                      bytes=1)  # fmt: skip


CASES: dict[str, tuple[list[Event], dict[str, Any]]] = {
    "nothing": ([], {"in_flight": (), "completions": (), "refusals": (), "wall": None}),
    "one job": (
        [intent("a", 0), sub("a", 1), done("a", 5), got("a", 6)],
        {"in_flight": ((T0 + 1, 1), (T0 + 5, 0)), "completions": (T0 + 5,), "wall": 6.0,
         "timings": {"a": JobTiming(T0 + 1, T0 + 5, T0 + 6)}},
    ),
    "two overlapping": (
        [sub("a", 0), sub("b", 1), done("a", 2), done("b", 3, Outcome.FAILED)],
        {"in_flight": ((T0, 1), (T0 + 1, 2), (T0 + 2, 1), (T0 + 3, 0)), "peak": 2},
    ),
    "a timed-out or unpollable job stops counting": (
        [sub("a", 0), sub("b", 0), TimedOut(job="a", ts=ts(1), job_id="job_a"),
         PollFailed(job="b", ts=ts(2), job_id="job_b")],
        {"in_flight": ((T0, 1), (T0, 2), (T0 + 1, 1), (T0 + 2, 0)), "completions": ()},
    ),
    "a rejected POST is a completion, never in flight": (
        [intent("a", 0), Rejected(job="a", ts=ts(1), attempt=1, error="422")],
        {"in_flight": (), "completions": (T0 + 1,)},
    ),
    "429s at the cap are refusals with the jobs in flight then": (
        [sub("a", 0), sub("b", 0), NotSubmitted(job="c", ts=ts(1), attempt=1,
                                                error="HTTP 429: Too many custom jobs"),
         done("a", 2), NotSubmitted(job="c", ts=ts(3), attempt=1, error="too many requests"),
         NotSubmitted(job="d", ts=ts(4), attempt=1, error="HTTP 401: unauthorized")],
        {"refusals": ((T0 + 1, 2), (T0 + 3, 1)), "cap": 2},
    ),
    "a new attempt forgets the old timings": (
        [sub("a", 0), done("a", 1, Outcome.FAILED), intent("a", 5), sub("a", 6)],
        {"timings": {"a": JobTiming(T0 + 6, None, None)}},
    ),
    "a line without a time is skipped": (
        [Submitted(job="a", ts="", job_id="j", model=V21, attempt=1), done("a", 1)],
        {"in_flight": (), "completions": (T0 + 1,), "wall": 0.0},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_timeline_of(name: str) -> None:
    events, expected = CASES[name]
    line = timeline_of(events)
    checks = {"in_flight": line.in_flight, "completions": line.completions,
              "refusals": line.refusals, "wall": line.wall_seconds, "peak": line.peak_in_flight,
              "cap": line.cap_seen, "timings": dict(line.timings)}  # fmt: skip
    for key, value in expected.items():
        if key == "wall":
            assert checks[key] == (None if value is None else pytest.approx(value))
        else:
            assert checks[key] == value, key


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [([], 50, None), ([3.0], 95, 3.0), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 95, 4),
     (list(range(1, 101)), 95, 95), (list(range(100, 0, -1)), 50, 50), ([5, 1], 0, 1)],
)  # fmt: skip
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_waits_are_submit_to_file_over_succeeded_jobs() -> None:
    assert JobTiming(10.0, 11.0, 14.5).submit_to_file == 4.5
    assert JobTiming(10.0, 11.0, None).submit_to_file is None
    assert JobTiming(None, None, 3.0).submit_to_file is None


@pytest.mark.parametrize(
    ("series", "count", "peaks"),
    [
        ([], 4, [0, 0, 0, 0]),
        ([(0.0, 1), (1.0, 0)], 4, [1, 1, 0, 0]),  # ends at the 1 s mark of a 0-4 s run
        ([(0.0, 3), (0.1, 0)], 4, [3, 0, 0, 0]),  # a short peak is kept, not averaged away
        ([(2.5, 2), (0.5, 1)], 4, [1, 1, 2, 2]),  # out of order: sorted
        ([(4.0, 5)], 4, [0, 0, 0, 5]),  # a point at the very end lands in the last column
    ],
)
def test_bucket_peaks(series: list[tuple[float, int]], count: int, peaks: list[int]) -> None:
    assert bucket_peaks(series, 0.0, 4.0, count) == peaks


def test_cumulative_completions() -> None:
    assert cumulative([0.5, 1.0, 3.9, 4.0], 0.0, 4.0, 4) == [2, 2, 2, 4]
    assert cumulative([], 0.0, 4.0, 2) == [0, 0]


def test_svg_of_nothing_is_a_sentence() -> None:
    assert "<svg" not in timeline_svg(Timeline())


def test_svg_numbers_and_marks() -> None:
    line = timeline_of([sub("a", 0), sub("b", 1), done("a", 2), done("b", 4)])
    svg = timeline_svg(line, concurrency=8)
    assert svg.startswith('<svg class="timeline"') and svg.endswith("</svg>")
    assert 'class="asked"' in svg and 'class="cap"' not in svg
    assert "over 4.0 s" in svg


def test_summary_of_a_timeline() -> None:
    line = timeline_of([sub("a", 0), NotSubmitted(job="b", ts=ts(1), attempt=1, error="HTTP 429"),
                        done("a", 3), got("a", 4)])
    s = summarize([], line)
    assert (s.wall_seconds, s.refusals, s.cap_seen, s.peak_in_flight) == (4.0, 1, 1, 1)
    assert s.p50_submit_to_file is None  # no succeeded view: waits count done jobs only


@pytest.mark.parametrize(
    ("series", "until", "held"),
    [
        ([], 10.0, 0),
        ([(0.0, 3)], 10.0, 3),
        ([(0.0, 1), (1.0, 3), (9.0, 2)], 10.0, 3),  # 3 for 8 s of the 10
        ([(0.0, 2), (5.0, 4)], 10.0, 4),  # equal spans: the higher
        ([(0.0, 3), (2.0, 8)], 2.0, 3),  # after `until` does not count
    ],
)
def test_held_level(series: list[tuple[float, int]], until: float, held: int) -> None:
    assert held_level(series, until) == held


def test_held_is_where_the_run_sat_while_jobs_waited() -> None:
    # Three places at a time while six jobs wait their turn, then the queue is empty.
    events: list[Event] = []
    for n in range(6):
        start = (n // 3) * 10.0
        events += [intent(f"j{n}", start), sub(f"j{n}", start + 0.1)]
    events += [done(f"j{n}", 9.9) for n in range(3)]
    line = timeline_of(sorted(events, key=lambda e: e.ts))
    assert line.filled == T0 + 10.0
    assert line.held == 3
    svg = timeline_svg(line, concurrency=10)
    assert "held at 3 in flight while jobs waited (asked 10)" in svg
    assert "held at" not in timeline_svg(line, concurrency=3)  # what was asked: no cap
