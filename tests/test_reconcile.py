"""Matching lost POSTs to the jobs the API created: bodies, counts, claims, models, time;
and one body's POSTs for two models, which nothing could tell apart, kept out of the air
together."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from runner.canonical import canonical_json
from runner.clock import parse_iso
from runner.domain import RemoteJob, RemoteStatus
from runner.reconcile import (
    CLOCK_SKEW,
    Intent,
    Reconciler,
    ambiguous_intents,
    body_fingerprint,
    listing_start,
    match_intents,
)
from tests.helpers.http import FakeTime

MODEL = "model_kling-v2-1-pro"
FOG = {"prompt": "A knight walks through fog", "duration": "5"}
RAIN = {"prompt": "A knight walks through rain", "duration": "5"}


def intent(job: str, body: dict[str, Any] = FOG, ts: str = "2025-01-01T12:00:00.000Z",
           model: str = MODEL) -> Intent:  # fmt: skip
    return Intent(job=job, model=model, body_json=canonical_json(body), ts=ts)


def remote(job_id: str, body: dict[str, Any] | None = FOG,
           created: str | None = "2025-01-01T12:00:01.000Z",
           model: str | None = MODEL) -> RemoteJob:  # fmt: skip
    return RemoteJob(
        job_id=job_id, status=RemoteStatus.QUEUED, raw_status="queued", progress=0.0,
        input=body, model_id=model, created_at=created,
    )  # fmt: skip


def ids(adopted: dict[str, RemoteJob]) -> dict[str, str]:
    return {job: remote_job.job_id for job, remote_job in adopted.items()}


# --- canonical spelling --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"b": 1, "a": 2}, '{"a":2,"b":1}'),
        ({"prompt": "騎士 — é"}, '{"prompt":"騎士 — é"}'),
        ({"n": {"z": [1, {"y": 2, "x": 1}]}}, '{"n":{"z":[1,{"x":1,"y":2}]}}'),
        ({}, "{}"),
    ],
)
def test_canonical_json(body: dict[str, Any], expected: str) -> None:
    assert canonical_json(body) == expected


def test_body_fingerprint_is_sha256_of_model_and_canonical_body() -> None:
    expected = hashlib.sha256(f'{MODEL}\n{{"a":2,"b":1}}'.encode()).hexdigest()
    assert body_fingerprint(MODEL, {"b": 1, "a": 2}) == expected
    assert body_fingerprint(MODEL, {"a": 2, "b": 1}) == expected
    assert body_fingerprint("other", {"a": 2, "b": 1}) != expected


# --- time ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["2025-01-01T12:00:00.000Z", "2025-01-01T12:00:00Z", "2025-01-01T12:00:00+00:00",
     "2025-01-01T14:00:00+02:00"],
)  # fmt: skip
def test_parse_iso_accepts_z_and_offsets(text: str) -> None:
    assert parse_iso(text) == parse_iso("2025-01-01T12:00:00.000Z")


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [
        (["2025-01-01T12:00:00.000Z"], "2025-01-01T11:58:00.000Z"),
        (["2025-01-01T12:05:00.000Z", "2025-01-01T12:00:30.250Z", "2025-01-01T12:10:00.000Z"],
         "2025-01-01T11:58:30.250Z"),
        (["2025-01-01T00:01:00.000Z"], "2024-12-31T23:59:00.000Z"),
    ],
)  # fmt: skip
def test_listing_start_is_the_oldest_intent_less_the_skew(stamps: list[str], expected: str) -> None:
    assert CLOCK_SKEW.total_seconds() == 120
    assert listing_start([intent(f"j{n}", ts=ts) for n, ts in enumerate(stamps)]) == expected


# --- matching ------------------------------------------------------------------------------


def test_an_intent_adopts_the_job_with_its_body() -> None:
    adopted = match_intents(
        [intent("fog"), intent("rain", RAIN)],
        [remote("job_rain", RAIN), remote("job_fog", FOG), remote("job_other", {"x": 1})],
        claimed=set(),
    )
    assert ids(adopted) == {"fog": "job_fog", "rain": "job_rain"}


def test_body_matching_ignores_key_order() -> None:
    reordered = {"duration": "5", "prompt": FOG["prompt"]}
    assert ids(match_intents([intent("a")], [remote("j", reordered)], set())) == {"a": "j"}


def test_nothing_matches_when_nothing_was_created() -> None:
    assert match_intents([intent("a")], [remote("j", RAIN)], set()) == {}
    assert match_intents([intent("a")], [], set()) == {}


def test_a_listed_job_without_input_is_never_adopted() -> None:
    assert match_intents([intent("a")], [remote("j", None)], set()) == {}


def test_identical_bodies_match_by_count_oldest_first() -> None:
    intents = [
        intent("third", ts="2025-01-01T12:00:03.000Z"),
        intent("first", ts="2025-01-01T12:00:01.000Z"),
        intent("second", ts="2025-01-01T12:00:02.000Z"),
    ]
    jobs = [
        remote("job_late", created="2025-01-01T12:00:05.000Z"),
        remote("job_early", created="2025-01-01T12:00:04.000Z"),
    ]
    adopted = match_intents(intents, jobs, set())
    assert ids(adopted) == {"first": "job_early", "second": "job_late"}  # 3 intents, 2 jobs


def test_identical_bodies_with_equal_times_are_ordered_by_job_and_job_id() -> None:
    intents = [intent("b"), intent("a")]
    jobs = [remote("job_2", created="2025-01-01T12:00:01.000Z"),
            remote("job_1", created="2025-01-01T12:00:01.000Z")]  # fmt: skip
    assert ids(match_intents(intents, jobs, set())) == {"a": "job_1", "b": "job_2"}


def test_each_listed_job_is_adopted_once() -> None:
    adopted = match_intents([intent("a"), intent("b")], [remote("only")], set())
    assert list(adopted.values()) == [remote("only")]
    assert len(adopted) == 1


def test_claimed_job_ids_are_excluded_and_not_modified() -> None:
    claimed = {"job_known"}
    adopted = match_intents(
        [intent("a")],
        [remote("job_known", created="2025-01-01T12:00:00.500Z"), remote("job_new")],
        claimed,
    )
    assert ids(adopted) == {"a": "job_new"}
    assert claimed == {"job_known"}


def test_only_claimed_jobs_means_no_match() -> None:
    assert match_intents([intent("a")], [remote("job_known")], {"job_known"}) == {}


@pytest.mark.parametrize(
    ("intent_model", "job_model", "adopted"),
    [
        (MODEL, MODEL, True),
        (MODEL, "model_kling-v3-t2v-4k", False),  # same body, another model: not ours
        (MODEL, None, True),  # the listing did not say: body decides
    ],
)
def test_model_mismatch_excludes_when_the_model_is_known(
    intent_model: str, job_model: str | None, adopted: bool
) -> None:
    result = match_intents([intent("a", model=intent_model)], [remote("j", model=job_model)],
                           set())  # fmt: skip
    assert bool(result) is adopted


@pytest.mark.parametrize(
    ("created", "adopted"),
    [
        ("2025-01-01T12:00:00.000Z", True),  # same instant
        ("2025-01-01T13:00:00.000Z", True),  # much later: the POST was slow to land
        ("2025-01-01T11:58:30.000Z", True),  # before, within the skew
        ("2025-01-01T11:58:00.000Z", True),  # exactly the skew
        ("2025-01-01T11:57:59.999Z", False),  # before the skew: made by an earlier POST
        ("2025-01-01T10:00:00.000Z", False),
        ("2025-01-01T13:58:00.000+02:00", True),  # offsets compare as instants
        (None, True),  # no date listed: cannot exclude
    ],
)
def test_jobs_created_before_the_intent_less_skew_are_excluded(
    created: str | None, adopted: bool
) -> None:
    result = match_intents([intent("a")], [remote("j", created=created)], set())
    assert bool(result) is adopted


def test_a_too_old_job_is_skipped_for_a_younger_one_with_the_same_body() -> None:
    jobs = [remote("job_old", created="2025-01-01T11:00:00.000Z"),
            remote("job_new", created="2025-01-01T12:00:02.000Z")]  # fmt: skip
    assert ids(match_intents([intent("a")], jobs, set())) == {"a": "job_new"}


def test_an_older_intent_can_take_a_job_too_old_for_a_younger_intent() -> None:
    intents = [intent("old", ts="2025-01-01T10:00:00.000Z"),
               intent("young", ts="2025-01-01T12:00:00.000Z")]  # fmt: skip
    jobs = [remote("job_1000", created="2025-01-01T10:00:01.000Z"),
            remote("job_1200", created="2025-01-01T12:00:01.000Z")]  # fmt: skip
    assert ids(match_intents(intents, jobs, set())) == {"old": "job_1000", "young": "job_1200"}


def test_oldest_job_first_compares_instants_not_strings() -> None:
    jobs = [remote("job_later", created="2025-01-01T12:00:00.500Z"),
            remote("job_earlier", created="2025-01-01T12:00:00Z")]  # fmt: skip
    adopted = match_intents([intent("a"), intent("b", ts="2025-01-01T12:00:00.001Z")], jobs,
                            set())  # fmt: skip
    assert ids(adopted) == {"a": "job_earlier", "b": "job_later"}


# --- one body, two models: the API's job does not say its model ----------------------------

MOTION = {"image": "asset_a", "video": "asset_v"}
MOTION_BODY = canonical_json(MOTION)


def test_intents_of_two_models_with_one_body_adopt_nothing() -> None:
    intents = [Intent("v26", "model_kling-v2-6-motion-control", MOTION_BODY,
                      "2030-01-01T00:00:00Z"),
               Intent("v3", "model_kling-v3-pro-motion-control", MOTION_BODY,
                      "2030-01-01T00:00:00Z")]
    assert {i.job for i in ambiguous_intents(intents)} == {"v26", "v3"}
    listed = remote("job_1", MOTION, created="2030-01-01T00:00:01Z", model=None)
    assert match_intents(intents, [listed], set()) == {}


async def test_posts_of_one_body_for_two_models_are_never_in_the_air_together() -> None:
    async def no_jobs(_: str) -> AsyncIterator[RemoteJob]:
        return
        yield  # pragma: no cover

    rec = Reconciler(no_jobs, claimed=set(), settle=0, clock=FakeTime().as_clock())
    order: list[str] = []
    a_holds, release_a = anyio.Event(), anyio.Event()

    async def model_a() -> None:
        # The same model twice: repeats may fly together.
        async with rec.holding(MOTION_BODY, "model_a"), rec.holding(MOTION_BODY, "model_a"):
            a_holds.set()
            await release_a.wait()
            order.append("a ends")

    async def model_b() -> None:
        await a_holds.wait()
        async with rec.holding(MOTION_BODY, "model_b"):
            order.append("b began")

    async with anyio.create_task_group() as tg:
        tg.start_soon(model_a)
        tg.start_soon(model_b)
        await a_holds.wait()
        await anyio.sleep(0.05)  # model_b is waiting for the body by now
        release_a.set()
    assert order == ["a ends", "b began"]


async def test_many_lost_answers_waiting_together_share_their_listings() -> None:

    import anyio

    from runner.reconcile import Reconciler
    from tests.helpers.http import FakeTime

    listings: list[str] = []
    bodies = [canonical_json({"prompt": f"shot {n}", "duration": "5"}) for n in range(20)]

    async def list_jobs(since: str) -> AsyncIterator[RemoteJob]:
        listings.append(since)
        await anyio.sleep(0.01)  # the others ask while this one lists
        # Only the first ten lost answers created a job.
        for n, body in enumerate(bodies[:10]):
            yield RemoteJob(f"job_{n}", RemoteStatus.QUEUED, "queued", 0.0,
                            input=json.loads(body), created_at="2030-01-01T00:00:01Z")

    reconciler = Reconciler(list_jobs, claimed=set(), settle=0.0, clock=FakeTime().as_clock())
    found: dict[str, str | None] = {}

    async def resolve(n: int) -> None:
        lost = Intent(f"j{n}", MODEL, bodies[n], "2030-01-01T00:00:00.000Z")
        job = (await reconciler.resolve([lost]))[lost.job]
        found[lost.job] = job.job_id if job else None

    async with anyio.create_task_group() as tg:
        for n in range(20):
            tg.start_soon(resolve, n)
    assert found == {f"j{n}": (f"job_{n}" if n < 10 else None) for n in range(20)}
    assert len(listings) <= 3  # one listing served (nearly) all twenty
