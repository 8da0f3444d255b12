"""ScenarioClient against real in-process servers that produce exact fault shapes.

Time is fake (`FakeTime`): retries and pauses record their delays and return at once, so
these tests never sleep for real except where a read timeout must expire (0.2 s).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from runner.api import (
    USER_AGENT,
    Credentials,
    Pacer,
    RetryPolicy,
    ScenarioClient,
    ensure_anonymous_session,
)
from runner.domain import RemoteStatus
from runner.errors import (
    AuthError,
    CreditError,
    FencedError,
    OutcomeUnknownError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
)
from tests.helpers.http import FakeTime, Server, reset, respond, sequence, serve

AUTH = "Basic azpz"
MODEL = "model_kling-v2-1-pro"
GENERATE = f"/v1/generate/custom/{MODEL}"
JOB = {"jobId": "job_1", "jobType": "custom", "status": "queued", "progress": 0}
CREATED = {"job": JOB, "creativeUnitsCost": 100}
BODY = {"prompt": "A knight — in fog", "startImage": "asset_x", "duration": "5"}


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def make_client(
    session: aiohttp.ClientSession,
    server: Server,
    fake_time: FakeTime,
    *,
    attempts: int = 5,
    request_timeout: float = 5.0,
    pacer: Pacer | None = None,
) -> ScenarioClient:
    return ScenarioClient(
        session,
        f"{server.url}/v1",
        Credentials(AUTH),
        policy=RetryPolicy(max_attempts=attempts),
        pacer=pacer or Pacer(fake_time.clock),
        clock=fake_time.as_clock(),
        random=lambda: 0.0,
        request_timeout=request_timeout,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- headers and body ------------------------------------------------------------------------


async def test_generate_sends_the_sdk_headers_and_a_compact_body(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    async with serve({("POST", GENERATE): respond(200, CREATED)}) as server:
        submission = await make_client(session, server, fake_time).generate(MODEL, BODY)
    assert submission.job.job_id == "job_1"
    assert submission.job.status is RemoteStatus.QUEUED
    assert submission.cost == 100.0
    [seen] = server.seen
    assert seen.headers["Authorization"] == AUTH
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["User-Agent"] == USER_AGENT
    assert seen.body == json.dumps(BODY, separators=(",", ":"), ensure_ascii=False).encode()


async def test_get_sends_no_content_type(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    async with serve({("GET", "/v1/jobs/{id}"): respond(200, {"job": JOB})}) as server:
        job = await make_client(session, server, fake_time).get_job("job_1")
    assert job.job_id == "job_1"
    [seen] = server.seen
    assert "Content-Type" not in seen.headers
    assert seen.body == b""
    assert seen.headers["Authorization"] == AUTH


async def test_path_parameters_are_percent_encoded(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"job": {**JOB, "jobId": request.match_info["id"]}})

    async with serve({("GET", "/v1/jobs/{id}"): echo}) as server:
        job = await make_client(session, server, fake_time).get_job("a b/c")
    assert job.job_id == "a b/c"
    assert server.seen[0].path == "/v1/jobs/a b/c"  # one segment, decoded by the server


# -- retries of ordinary calls ---------------------------------------------------------------


async def test_a_5xx_then_success_is_retried_with_backoff(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    handler = sequence(respond(500), respond(503), respond(200, {"job": JOB}))
    async with serve({("GET", "/v1/jobs/{id}"): handler}) as server:
        job = await make_client(session, server, fake_time).get_job("job_1")
    assert job.job_id == "job_1"
    assert server.count("GET") == 3
    assert fake_time.sleeps == [0.5, 1.0]


async def test_generate_runs_its_guard_before_every_attempt(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    """A shared batch's last check (`before_send`) runs before each attempt leaves, the
    retries after a refused connection included; what it raises stops the POST unsent."""
    calls: list[int] = []

    def guard() -> None:
        calls.append(len(calls))
        if len(calls) == 3:
            raise FencedError("knight: taken over while this runner backed off")

    client = ScenarioClient(
        session, f"http://127.0.0.1:{closed_port()}/v1", Credentials(AUTH),
        policy=RetryPolicy(max_attempts=5), clock=fake_time.as_clock(), random=lambda: 0.0,
    )
    with pytest.raises(FencedError):
        await client.generate(MODEL, BODY, before_send=guard)
    assert calls == [0, 1, 2] and fake_time.sleeps == [0.5, 1.0]  # 2 refused, 3rd unsent


async def test_retries_stop_after_max_attempts(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    async with serve({("GET", "/v1/jobs/{id}"): respond(502, {"message": "gw"})}) as server:
        with pytest.raises(TransientApiError, match="HTTP 502: gw") as caught:
            await make_client(session, server, fake_time).get_job("job_1")
    assert caught.value.status == 502
    assert server.count("GET") == 5
    assert fake_time.sleeps == [0.5, 1.0, 2.0, 4.0]


async def test_x_should_retry_false_stops_at_once(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    handler = respond(500, {"message": "no"}, {"x-should-retry": "false"})
    async with serve({("GET", "/v1/jobs/{id}"): handler}) as server:
        with pytest.raises(TransientApiError):
            await make_client(session, server, fake_time).get_job("job_1")
    assert server.count("GET") == 1
    assert fake_time.sleeps == []


async def test_x_should_retry_true_retries_even_a_4xx(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    handler = sequence(respond(400, None, {"x-should-retry": "true"}), respond(200, {"job": JOB}))
    async with serve({("GET", "/v1/jobs/{id}"): handler}) as server:
        await make_client(session, server, fake_time).get_job("job_1")
    assert server.count("GET") == 2


@pytest.mark.parametrize(
    ("headers", "delay"),
    [({"retry-after-ms": "200"}, 0.2), ({"retry-after": "3"}, 3.0), ({"retry-after": "600"}, 0.5)],
)
async def test_a_429_pauses_the_run_for_the_server_delay(
    session: aiohttp.ClientSession, fake_time: FakeTime, headers: dict[str, str], delay: float
) -> None:
    handler = sequence(respond(429, {"message": "slow down"}, headers), respond(200, {"job": JOB}))
    pacer = Pacer(fake_time.clock)
    async with serve({("GET", "/v1/jobs/{id}"): handler}) as server:
        await make_client(session, server, fake_time, pacer=pacer).get_job("job_1")
    assert server.count("GET") == 2
    assert fake_time.sleeps == [pytest.approx(delay)]


async def test_every_request_waits_out_a_shared_pause(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    pacer = Pacer(fake_time.clock)
    pacer.pause_for(7.0)  # as if another worker had just met a 429
    async with serve({("GET", "/v1/jobs/{id}"): respond(200, {"job": JOB})}) as server:
        client = make_client(session, server, fake_time, pacer=pacer)
        await client.get_job("job_1")
        await client.get_job("job_1")
    assert fake_time.sleeps == [7.0]  # the first waited; the pause was over for the second


async def test_rate_limits_that_never_end_raise_rate_limited(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    handler = respond(429, None, {"retry-after": "1"})
    async with serve({("GET", "/v1/jobs/{id}"): handler}) as server:
        with pytest.raises(RateLimitedError) as caught:
            await make_client(session, server, fake_time, attempts=3).get_job("job_1")
    assert caught.value.retry_after == 1.0
    assert server.count("GET") == 3


async def test_a_slow_answer_times_out_and_is_retried(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"job": JOB})

    handler = sequence(slow, respond(200, {"job": JOB}))
    async with serve({("GET", "/v1/jobs/{id}"): handler}) as server:
        client = make_client(session, server, fake_time, request_timeout=0.2)
        job = await client.get_job("job_1")
    assert job.job_id == "job_1"
    assert server.count("GET") == 2


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"message": "bad key"}, AuthError),
        (403, {"message": "no"}, AuthError),
        (402, None, CreditError),
        (404, {"message": "no such job"}, PermanentApiError),
    ],
)
async def test_client_errors_are_not_retried(
    session: aiohttp.ClientSession,
    fake_time: FakeTime,
    status: int,
    body: Any,
    error: type[Exception],
) -> None:
    async with serve({("GET", "/v1/jobs/{id}"): respond(status, body)}) as server:
        with pytest.raises(error):
            await make_client(session, server, fake_time).get_job("job_1")
    assert server.count("GET") == 1


# -- generate: never re-posted when the outcome is unknown -----------------------------------


@pytest.mark.parametrize(
    ("handler", "match"),
    [
        (respond(500, {"message": "boom"}), "HTTP 500"),
        (respond(503, None, {"x-should-retry": "true"}), "HTTP 503"),
        (respond(408), "HTTP 408"),
        (respond(409), "HTTP 409"),
        (reset, "connection was lost"),
        (respond(200, {"unexpected": True}), "unreadable success answer"),
    ],
)
async def test_generate_with_an_unknown_outcome_is_posted_once(
    session: aiohttp.ClientSession, fake_time: FakeTime, handler: Any, match: str
) -> None:
    async with serve({("POST", GENERATE): handler}) as server:
        with pytest.raises(OutcomeUnknownError, match=match):
            await make_client(session, server, fake_time).generate(MODEL, BODY)
    assert server.count("POST", GENERATE) == 1
    assert fake_time.sleeps == []


async def test_generate_that_times_out_is_posted_once(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    import asyncio

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response(CREATED)

    async with serve({("POST", GENERATE): slow}) as server:
        client = make_client(session, server, fake_time, request_timeout=0.2)
        with pytest.raises(OutcomeUnknownError, match="no answer in time"):
            await client.generate(MODEL, BODY)
    assert server.count("POST", GENERATE) == 1


async def test_a_429_on_generate_is_backpressure_raised_at_once_with_its_delay(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    # Nothing was created; the batch's admission waits for a place instead of this call
    # holding one (and pausing every other request of the run) while it retries.
    handler = sequence(respond(429, None, {"retry-after-ms": "300"}), respond(200, CREATED))
    async with serve({("POST", GENERATE): handler}) as server:
        with pytest.raises(RateLimitedError) as caught:
            await make_client(session, server, fake_time).generate(MODEL, BODY)
    assert caught.value.retry_after == pytest.approx(0.3)
    assert server.count("POST", GENERATE) == 1
    assert fake_time.sleeps == []


async def test_generate_that_could_not_connect_is_retried_and_stays_transient(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    client = ScenarioClient(
        session,
        f"http://127.0.0.1:{closed_port()}/v1",
        Credentials(AUTH),
        policy=RetryPolicy(max_attempts=3),
        clock=fake_time.as_clock(),
        random=lambda: 0.0,
    )
    with pytest.raises(TransientApiError, match="could not connect") as caught:
        await client.generate(MODEL, BODY)
    assert not isinstance(caught.value, OutcomeUnknownError)  # nothing was created
    assert fake_time.sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (400, {"message": "prompt is required"}, PermanentApiError),
        (422, {"message": "duration: 7 is not one of ['5', '10']"}, PermanentApiError),
        (401, None, AuthError),
        (402, {"message": "pay"}, CreditError),
        (400, {"message": "Not enough creative units"}, CreditError),
    ],
)
async def test_generate_refusals_keep_their_class(
    session: aiohttp.ClientSession,
    fake_time: FakeTime,
    status: int,
    body: Any,
    error: type[Exception],
) -> None:
    async with serve({("POST", GENERATE): respond(status, body)}) as server:
        with pytest.raises(error) as caught:
            await make_client(session, server, fake_time).generate(MODEL, BODY)
    assert not isinstance(caught.value, OutcomeUnknownError)
    assert server.count("POST") == 1


# -- the other endpoints ---------------------------------------------------------------------


async def test_estimate_reads_the_dry_run_answer(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    handler = respond(269, {"creativeUnitsCost": 42, "costDetails": {"custom-generation": 42}})
    async with serve({("POST", GENERATE): handler}) as server:
        assert await make_client(session, server, fake_time).estimate(MODEL, BODY) == 42.0
    assert server.seen[0].query == {"dryRun": "true"}


async def test_estimate_answered_with_200_is_flagged(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    async with serve({("POST", GENERATE): respond(200, CREATED)}) as server:
        with pytest.raises(PermanentApiError, match="expected HTTP 269"):
            await make_client(session, server, fake_time).estimate(MODEL, BODY)


async def test_list_jobs_follows_tokens_through_empty_pages(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    pages = {
        None: {"jobs": [{**JOB, "jobId": "a"}], "nextPaginationToken": "t1"},
        "t1": {"jobs": [], "nextPaginationToken": "t2"},
        "t2": {"jobs": [], "nextPaginationToken": "t3"},
        "t3": {"jobs": [{**JOB, "jobId": "c"}]},
    }

    async def listing(request: web.Request) -> web.Response:
        return web.json_response(pages[request.query.get("paginationToken")])

    async with serve({("GET", "/v1/jobs"): listing}) as server:
        client = make_client(session, server, fake_time)
        ids = [job.job_id async for job in client.list_jobs(types=("custom", "workflow"))]
    assert ids == ["a", "c"]
    assert server.count("GET") == 4
    assert server.seen[0].query == {"pageSize": "100", "types": "custom,workflow"}


async def test_list_jobs_created_after_filters_types_client_side(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    page = {
        "jobs": [
            {**JOB, "jobId": "a"},
            {**JOB, "jobId": "b", "jobType": "upload"},
            {**JOB, "jobId": "c", "status": "success"},
        ]
    }
    async with serve({("GET", "/v1/jobs"): respond(200, page)}) as server:
        client = make_client(session, server, fake_time)
        jobs = [j async for j in client.list_jobs(created_after="2025-01-01T00:00:00Z")]
        queued = [
            j.job_id
            async for j in client.list_jobs(created_after="2025-01-01T00:00:00Z", status="queued")
        ]
    assert [j.job_id for j in jobs] == ["a", "c"]
    assert queued == ["a"]
    assert server.seen[0].query == {"pageSize": "100", "createdAfter": "2025-01-01T00:00:00Z"}


async def test_list_jobs_stops_on_a_repeated_token(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    page = {"jobs": [], "nextPaginationToken": "same"}
    async with serve({("GET", "/v1/jobs"): respond(200, page)}) as server:
        client = make_client(session, server, fake_time)
        with pytest.raises(PermanentApiError, match="repeated"):
            _ = [j async for j in client.list_jobs()]


async def test_cancel_asset_and_upload_calls(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    asset = {"id": "asset_v", "status": "success", "url": "http://cdn/x", "properties": {"size": 9}}
    upload = {"id": "up_1", "status": "pending", "parts": [{"number": 1, "url": "http://s3/1"}]}
    routes = {
        ("POST", "/v1/jobs/{id}/action"): respond(200, {"job": {**JOB, "status": "canceled"}}),
        ("GET", "/v1/assets/{id}"): respond(200, {"asset": asset}),
        ("POST", "/v1/assets"): respond(200, {"asset": {"id": "asset_new"}}),
        ("POST", "/v1/uploads"): respond(200, {"upload": upload}),
        ("POST", "/v1/uploads/{id}/action"): respond(200, {"upload": upload}),
        ("GET", "/v1/uploads/{id}"): respond(
            200, {"upload": {**upload, "status": "imported", "entityId": "asset_up"}}
        ),
    }
    async with serve(routes) as server:
        client = make_client(session, server, fake_time)
        canceled = await client.cancel_job("job_1")
        fetched = await client.get_asset("asset_v")
        created = await client.create_image_asset("frame.png", b"\x89PNG")
        ticket = await client.create_upload(
            file_name="ref.mp4", content_type="video/mp4", size=10, parts=1, kind="video"
        )
        await client.complete_upload("up_1")
        state = await client.get_upload("up_1")
    assert canceled.status is RemoteStatus.CANCELED
    assert (fetched.asset_id, fetched.size) == ("asset_v", 9)
    assert created == "asset_new"
    assert ticket.parts[0].url == "http://s3/1"
    assert (state.status, state.entity_id) == ("imported", "asset_up")
    bodies = [json.loads(s.body) for s in server.seen if s.method == "POST"]
    assert bodies == [
        {"action": "cancel"},
        {"name": "frame.png", "image": "data:image/png;base64,iVBORw=="},
        {
            "fileName": "ref.mp4",
            "contentType": "video/mp4",
            "fileSize": 10,
            "parts": 1,
            "kind": "video",
        },
        {"action": "complete"},
    ]


# -- credentials stay on the API origin ------------------------------------------------------


async def test_a_redirect_to_another_origin_carries_no_credentials(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    async with serve({("GET", "/elsewhere/{id}"): respond(200, {"job": JOB})}) as other:

        async def bounce(request: web.Request) -> web.Response:
            raise web.HTTPFound(f"{other.url}/elsewhere/{request.match_info['id']}")

        async with serve({("GET", "/v1/jobs/{id}"): bounce}) as api:
            await make_client(session, api, fake_time).get_job("job_1")
    assert api.seen[0].headers["Authorization"] == AUTH
    assert [s.path for s in other.seen] == ["/elsewhere/job_1"]
    assert "Authorization" not in other.seen[0].headers


async def test_origin_is_scheme_host_and_port(
    session: aiohttp.ClientSession, fake_time: FakeTime
) -> None:
    client = ScenarioClient(session, "http://127.0.0.1:8123/v1/", Credentials(AUTH))
    assert client.origin == "http://127.0.0.1:8123"
    assert "azpz" not in repr(client)


async def test_a_session_with_default_credentials_is_refused() -> None:
    async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as leaky:
        with pytest.raises(ValueError, match="Authorization"):
            ensure_anonymous_session(leaky)
    async with aiohttp.ClientSession() as bare:
        ensure_anonymous_session(bare)
