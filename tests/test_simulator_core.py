"""Table tests of the simulator's pure decisions: faults, lifecycle, listing, billing, auth."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator

import pytest

from runner.simulator import (
    Job,
    SimState,
    SimulatorConfig,
    authorized,
    billing,
    faults,
    iso_ms,
    lifecycle,
    listing,
    request_fingerprint,
    sign,
    signature_ok,
)
from runner.simulator.faults import Outcome


def test_draw_is_a_pure_function_of_its_arguments() -> None:
    assert faults.draw(1, "rate_limit", "k", 0) == faults.draw(1, "rate_limit", "k", 0)
    assert faults.draw(1, "rate_limit", "k", 0) != faults.draw(2, "rate_limit", "k", 0)
    assert faults.draw(1, "rate_limit", "k", 0) != faults.draw(1, "rate_limit", "k", 1)
    assert 0.0 <= faults.draw(7, "x", "y") < 1.0


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_fire_frequency_follows_the_rate(rate: float) -> None:
    hits = sum(faults.fires({"f": rate}, 3, "f", f"key{i}") for i in range(4000))
    assert abs(hits / 4000 - rate) < 0.03


def test_zero_and_one_rates_are_exact() -> None:
    assert not any(faults.fires({"f": 0.0}, 0, "f", str(i)) for i in range(200))
    assert all(faults.fires({"f": 1.0}, 0, "f", str(i)) for i in range(200))


def test_before_request_faults_have_their_wire_shape() -> None:
    for name, statuses in [("rate_limit", {429}), ("server_error", {500, 502, 503}),
                           ("conflict", {408, 409}), ("server_error_no_retry", {503})]:
        seen = [faults.before_request({name: 1.0}, 0, f"k{i}", 0, 0.5) for i in range(30)]
        assert {fault.status for fault in seen if fault} == statuses
    limited = [faults.before_request({"rate_limit": 1.0}, 0, f"k{i}", 0, 0.5) for i in range(30)]
    hints = {next(iter(fault.headers)) for fault in limited if fault}
    assert hints == {"retry-after", "retry-after-ms"}
    no_retry = faults.before_request({"server_error_no_retry": 1.0}, 0, "k", 0, 0.5)
    assert no_retry is not None and no_retry.headers == {"x-should-retry": "false"}
    reset = faults.before_request({"reset_before_create": 1.0}, 0, "k", 0, 0.5)
    assert reset is not None and reset.is_reset


def test_after_create_and_job_outcomes() -> None:
    assert faults.after_create({}, 0, "k", 0) is None
    hidden = faults.after_create({"reset_after_create": 1.0}, 0, "k", 0)
    assert hidden is not None and hidden.is_reset
    assert faults.job_outcome({"job_failure": 1.0}, 0, "job_a") is Outcome.CONTENT_POLICY
    assert faults.job_outcome({"transient_job_failure": 1.0}, 0, "job_a") is Outcome.TRANSIENT
    assert faults.job_outcome({}, 0, "job_a") is Outcome.SUCCESS
    assert 0.3 <= faults.job_duration(0, "job_a", (0.3, 1.5)) <= 1.5
    assert {faults.asset_count(0, f"j{i}", (1, 3)) for i in range(50)} == {1, 2, 3}


@pytest.mark.parametrize(
    ("elapsed", "status", "progress"),
    [(0.0, "queued", 0.0), (0.15, "warming-up", 0.0), (0.25, "in-progress", 0.0),
     (0.55, "in-progress", 0.45), (0.9, "finalizing", 0.9333), (1.0, "success", 1.0),
     (50.0, "success", 1.0)],
)
def test_lifecycle_of_a_successful_job(elapsed: float, status: str, progress: float) -> None:
    snap = lifecycle.snapshot(1.0, Outcome.SUCCESS, elapsed)
    assert (snap.status, snap.progress) == (status, progress)


def test_lifecycle_history_failure_and_cancel() -> None:
    done = lifecycle.snapshot(2.0, Outcome.SUCCESS, 9.0)
    assert [s for s, _ in done.history] == [
        "queued", "warming-up", "in-progress", "finalizing", "success"]
    assert done.updated == 2.0 and done.terminal
    failed = lifecycle.snapshot(2.0, Outcome.TRANSIENT, 9.0)
    assert [s for s, _ in failed.history][-2:] == ["in-progress", "failure"]
    assert 0 < failed.progress < 1
    canceled = lifecycle.snapshot(2.0, Outcome.SUCCESS, 9.0, canceled_at=0.3)
    assert [s for s, _ in canceled.history] == ["queued", "warming-up", "canceled"]
    late_cancel = lifecycle.snapshot(2.0, Outcome.SUCCESS, 9.0, canceled_at=5.0)
    assert late_cancel.status == "success"


def _listed(count: int) -> list[listing.Listed]:
    return [listing.Listed(seq, "success", "custom", float(seq), float(seq))
            for seq in range(count, 0, -1)]


def test_pagination_walks_every_job_once() -> None:
    jobs, seen, token = _listed(7), [], None
    while True:
        params = {"pageSize": "3", **({"paginationToken": token} if token else {})}
        page, token = listing.paginate(jobs, listing.parse_query(params), empty_page=False)
        seen += page
        if token is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_empty_pages_carry_a_token_and_never_repeat() -> None:
    jobs, seen, token, empties = _listed(5), [], None, 0
    for _ in range(20):
        params = {"pageSize": "2", **({"paginationToken": token} if token else {})}
        page, token = listing.paginate(jobs, listing.parse_query(params), empty_page=True)
        empties += not page
        seen += page
        if token is None:
            break
    assert seen == [5, 4, 3, 2, 1] and empties == 3


@pytest.mark.parametrize(
    "params",
    [{"pageSize": "0"}, {"pageSize": "101"}, {"pageSize": "x"}, {"status": "done"},
     {"createdAfter": "2025-01-01T00:00:00Z", "status": "success"},
     {"createdAfter": "yesterday"}, {"paginationToken": "%%%"}],
)
def test_bad_list_queries_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(listing.QueryError):
        listing.parse_query(params)


def test_list_filters() -> None:
    query = listing.parse_query({"types": "custom,workflow", "status": "success",
                                 "updatedAfter": "1970-01-01T00:00:03Z"})
    assert query.types == frozenset({"custom", "workflow"})
    kept = [job.seq for job in _listed(5) if listing.matches(job, query)]
    assert kept == [5, 4]


def test_cost_model() -> None:
    def unknown(_: str) -> float | None:
        return None

    assert billing.video_seconds("model_kling-v2-1-pro", {"duration": "10"}, unknown, 5) == 10
    shots = {"multiPrompt": [{"prompt": "a", "duration": "3"}, {"prompt": "b", "duration": "4"}]}
    assert billing.video_seconds("model_kling-v3-t2v-4k", shots, unknown, 5) == 7
    motion = {"video": "asset_v"}
    assert billing.video_seconds("model_kling-v3-pro-motion-control", motion, unknown, 5) == 5
    assert billing.video_seconds(
        "model_kling-v3-pro-motion-control", motion, lambda _: 8.5, 5) == 8.5
    assert billing.cost("model_kling-v2-1-pro", 5) == 100
    assert billing.cost("model_unknown", 2) == 50


def _basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def test_auth_rules() -> None:
    open_config = SimulatorConfig()
    assert authorized(_basic("k", "s"), open_config)
    assert authorized("Bearer tok", open_config)
    for header in [None, "", _basic("k", ""), _basic("", "s"), "Bearer ", "Token x", "Basic !!"]:
        assert not authorized(header, open_config)
    locked = SimulatorConfig(api_key="k", api_secret="s")
    assert authorized(_basic("k", "s"), locked)
    assert not authorized(_basic("k", "t"), locked)
    assert not authorized("Bearer tok", locked)
    bearer_only = SimulatorConfig(bearer="jwt")
    assert authorized("Bearer jwt", bearer_only) and not authorized(_basic("k", "s"), bearer_only)


def test_signatures_and_dates() -> None:
    key = b"k" * 32
    good = sign(key, "/files/a/b.mp4", 2000)
    assert signature_ok(key, "/files/a/b.mp4", "2000", good, now_unix=1999)
    assert not signature_ok(key, "/files/a/b.mp4", "2000", good, now_unix=2000)
    assert not signature_ok(key, "/files/a/c.mp4", "2000", good, now_unix=1)
    assert not signature_ok(key, "/files/a/b.mp4", "abc", good, now_unix=1)
    assert iso_ms(0.5) == "1970-01-01T00:00:00.500Z"


def test_fingerprint_is_canonical() -> None:
    one = request_fingerprint("model_x", {"b": 1, "a": "é"})
    assert one == request_fingerprint("model_x", {"a": "é", "b": 1})
    assert one != request_fingerprint("model_y", {"a": "é", "b": 1})
    assert len(one) == 64


def test_config_validation_and_profiles() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        SimulatorConfig(faults={"nope": 0.1})
    with pytest.raises(ValueError, match="within"):
        SimulatorConfig(faults={"rate_limit": 2.0})
    with pytest.raises(ValueError, match="profile"):
        SimulatorConfig(profile="mild")
    assert not any(SimulatorConfig().fault_rates().values())
    hostile = SimulatorConfig(profile="hostile", faults={"rate_limit": 0.0}).fault_rates()
    assert hostile["rate_limit"] == 0.0 and hostile["server_error"] > 0
    flaky = SimulatorConfig(profile="flaky").fault_rates()
    assert flaky["job_failure"] == 0 and flaky["server_error_no_retry"] == 0


def test_pagination_reads_one_job_past_the_page() -> None:
    read: list[int] = []

    def lazily() -> Iterator[listing.Listed]:
        for job in _listed(1000):
            read.append(job.seq)
            yield job

    page, token = listing.paginate(lazily(), listing.parse_query({"pageSize": "3"}), False)
    assert page == [1000, 999, 998] and token is not None and len(read) == 4


@pytest.mark.parametrize(
    ("params", "created_bound", "update_bound", "expected"),
    [
        ({}, 0.0, 0.0, True),
        ({"createdAfter": "1970-01-01T00:00:10Z"}, 10.0, 99.0, False),
        ({"createdAfter": "1970-01-01T00:00:10Z"}, 10.001, 0.0, True),
        ({"updatedAfter": "1970-01-01T00:00:10Z"}, 99.0, 10.0, False),
        ({"updatedAfter": "1970-01-01T00:00:10Z"}, 0.0, 10.001, True),
        ({"status": "success"}, 0.0, 0.0, True),
    ],
)
def test_older_jobs_may_match_only_inside_the_date_bounds(
    params: dict[str, str], created_bound: float, update_bound: float, expected: bool
) -> None:
    query = listing.parse_query(params)
    assert listing.older_may_match(query, created_bound, update_bound) is expected


def _job(seq: int, created: float, duration: float, outcome: Outcome) -> Job:
    return Job(f"job_{seq}", "m", "f", {}, created, duration, outcome, (), 0, seq)


def test_indexed_bounds_cover_every_older_job_whatever_the_clock() -> None:
    state, rng = SimState(0), random.Random(5)
    for seq in range(1, 300):
        outcome = rng.choice(list(Outcome))
        job = _job(seq, rng.uniform(0, 100), rng.uniform(0, 30), outcome)
        if rng.random() < 0.2:
            job.canceled_at = rng.uniform(-1, 30)
        state.add_job(job)
    entries = list(state.newest_first())
    assert [e.job.seq for e in entries] == list(range(299, 0, -1))
    for index, entry in enumerate(entries):
        older = [e.job for e in entries[index:]]
        assert entry.created_bound == max(j.created for j in older)
        latest = max(j.created + j.snapshot(1e9).updated for j in older)
        assert latest <= entry.update_bound
    assert [e.job.seq for e in state.newest_first(before_seq=3)] == [2, 1]
    with pytest.raises(ValueError, match="not after"):
        state.add_job(_job(5, 0.0, 1.0, Outcome.SUCCESS))


def test_jobs_in_flight_matches_a_full_count_as_time_moves() -> None:
    state, rng = SimState(0), random.Random(9)
    now = 0.0
    for seq in range(1, 400):
        now += rng.uniform(-0.5, 1.0)  # mostly forward, sometimes back
        job = _job(seq, now, rng.uniform(0, 20), rng.choice(list(Outcome)))
        state.add_job(job)
        if rng.random() < 0.1:
            victim = state.jobs[f"job_{rng.randint(1, seq)}"]
            victim.canceled_at = now - victim.created
        probe = now + rng.uniform(-3, 3)
        full = sum(1 for j in state.jobs.values() if j.ends_at() > probe)
        assert state.jobs_in_flight(probe) == full
