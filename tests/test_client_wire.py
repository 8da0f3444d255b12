"""Table tests of the client's pure parts: wire parsing, error mapping, retry decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from runner.api.auth import Credentials, credentials_from_env
from runner.api.client import jobs_query, path_segment
from runner.api.failures import (
    Failure,
    failure_for_exception,
    failure_for_status,
    final_error,
    retry_allowed,
)
from runner.api.transport import decode_body, encode_json
from runner.api.wire import (
    UploadPart,
    WireFormatError,
    error_message,
    parse_asset,
    parse_created_asset_id,
    parse_estimate,
    parse_job,
    parse_job_page,
    parse_submission,
    parse_upload_state,
    parse_upload_ticket,
)
from runner.domain import RemoteStatus
from runner.errors import (
    ApiError,
    AuthError,
    CreditError,
    OutcomeUnknownError,
    PermanentApiError,
    RateLimitedError,
    TransientApiError,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)

FULL_JOB: dict[str, Any] = {
    "jobId": "job_1",
    "jobType": "custom",
    "status": "success",
    "progress": 1,
    "metadata": {
        "input": {"prompt": "hi", "duration": "5"},
        "assetIds": ["asset_a", "asset_b"],
        "flow": [],
        "somethingNew": {"x": 1},
    },
    "statusHistory": [{"status": "queued", "date": "2025-01-01T00:00:00.000Z"}],
    "createdAt": "2025-01-01T00:00:00.000Z",
    "updatedAt": "2025-01-01T00:01:00.000Z",
    "billing": {"cuCost": 100, "cuDiscount": 0},
    "extraTopLevel": True,
}


def test_parse_job_reads_every_field_and_ignores_extras() -> None:
    job = parse_job(FULL_JOB)
    assert job.job_id == "job_1"
    assert job.status is RemoteStatus.SUCCESS
    assert job.progress == 1.0
    assert job.asset_ids == ("asset_a", "asset_b")
    assert job.input == {"prompt": "hi", "duration": "5"}
    assert job.cu_cost == 100.0
    assert job.created_at == "2025-01-01T00:00:00.000Z"
    assert job.updated_at == "2025-01-01T00:01:00.000Z"
    assert job.error is None


@pytest.mark.parametrize(
    ("wire", "check"),
    [
        (
            {"jobId": "j", "status": "queued"},
            lambda j: j.progress == 0.0 and j.asset_ids == () and j.input is None,
        ),
        (
            {"jobId": "j", "status": "teleporting"},
            lambda j: j.status is RemoteStatus.UNKNOWN and j.raw_status == "teleporting",
        ),
        (
            {"jobId": "j", "status": "failure", "metadata": {"error": "boom", "hint": "retry"}},
            lambda j: j.status.terminal and (j.error, j.hint) == ("boom", "retry"),
        ),
        (
            {"jobId": "j", "status": "canceled", "metadata": {"assetIds": "nope"}},
            lambda j: j.status is RemoteStatus.CANCELED and j.asset_ids == (),
        ),
        (
            {"jobId": "j", "status": "queued", "progress": True, "billing": {"cuCost": "9"}},
            lambda j: j.progress == 0.0 and j.cu_cost is None,  # wrong types read as absent
        ),
        (
            {"jobId": "j", "status": "queued", "metadata": {"modelId": "model_x"}},
            lambda j: j.model_id == "model_x",
        ),
    ],
)
def test_parse_job_tolerates_partial_and_odd_bodies(wire: dict[str, Any], check: Any) -> None:
    assert check(parse_job(wire))


@pytest.mark.parametrize(
    ("wire", "where"),
    [
        ({"status": "queued"}, "job.jobId"),
        ({"jobId": "j"}, "job.status"),
        ({"jobId": 3, "status": "queued"}, "job.jobId"),
        ("not an object", "job: expected an object"),
    ],
)
def test_parse_job_names_the_missing_field(wire: Any, where: str) -> None:
    with pytest.raises(WireFormatError, match=where):
        parse_job(wire)


def test_parse_submission_takes_the_cost_from_the_answer_or_the_billing() -> None:
    answer = {"job": FULL_JOB, "creativeUnitsCost": 120, "costDetails": {}}
    assert parse_submission(answer).cost == 120.0
    assert parse_submission({"job": FULL_JOB}).cost == 100.0
    with pytest.raises(WireFormatError):
        parse_submission({"creativeUnitsCost": 1})


def test_parse_estimate() -> None:
    assert parse_estimate({"creativeUnitsCost": 42, "costDetails": {}}) == 42.0
    with pytest.raises(WireFormatError, match="creativeUnitsCost"):
        parse_estimate({"costDetails": {}})


def test_parse_job_page_filters_types_and_keeps_the_cursor() -> None:
    page = {
        "jobs": [
            {"jobId": "a", "jobType": "custom", "status": "queued"},
            {"jobId": "b", "jobType": "workflow", "status": "queued"},
        ],
        "nextPaginationToken": "t2",
    }
    assert [j.job_id for j in parse_job_page(page).jobs] == ["a", "b"]
    filtered = parse_job_page(page, {"custom"})
    assert [j.job_id for j in filtered.jobs] == ["a"]
    assert filtered.next_token == "t2"
    empty = parse_job_page({"jobs": [], "nextPaginationToken": "t3"})
    assert (empty.jobs, empty.next_token) == ((), "t3")
    assert parse_job_page({"jobs": []}).next_token is None


def test_parse_asset() -> None:
    wire = {
        "asset": {
            "id": "asset_v",
            "status": "success",
            "url": "https://cdn.example/v.mp4?sig=1",
            "kind": "video",
            "mimeType": "video/mp4",
            "properties": {"size": 1234, "duration": 5.0},
            "tags": [],
        }
    }
    asset = parse_asset(wire)
    assert (asset.asset_id, asset.status, asset.size, asset.kind) == (
        "asset_v",
        "success",
        1234,
        "video",
    )
    assert asset.url.endswith("sig=1")
    pending = parse_asset({"asset": {"id": "asset_p", "status": "pending", "properties": {}}})
    assert (pending.status, pending.url, pending.size) == ("pending", "", None)
    with pytest.raises(WireFormatError, match=r"asset\.id"):
        parse_asset({"asset": {"status": "success"}})


def test_parse_uploads() -> None:
    created = {
        "upload": {
            "id": "up_1",
            "status": "pending",
            "parts": [
                {"number": 2, "url": "https://s3/2", "expires": "later"},
                {"number": 1, "url": "https://s3/1", "expires": "later"},
            ],
        }
    }
    ticket = parse_upload_ticket(created)
    assert ticket.upload_id == "up_1"
    assert ticket.parts == (
        UploadPart(1, "https://s3/1", "later"),
        UploadPart(2, "https://s3/2", "later"),
    )
    with pytest.raises(WireFormatError, match=r"parts\[0\].number"):
        parse_upload_ticket({"upload": {"id": "u", "parts": [{"url": "x"}]}})
    state = parse_upload_state({"upload": {"id": "up_1", "status": "imported", "entityId": "a"}})
    assert (state.status, state.entity_id, state.error) == ("imported", "a", None)
    failed = parse_upload_state(
        {"upload": {"id": "up_1", "status": "failed", "errorMessage": "bad codec"}}
    )
    assert failed.error == "bad codec"
    assert parse_created_asset_id({"asset": {"id": "asset_new"}}) == "asset_new"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"message": "nope"}, "nope"),
        ({"error": "bad"}, "bad"),
        ({"error": {"message": "nested"}}, "nested"),
        ("<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>"),
        (None, "None"),
    ],
)
def test_error_message(body: Any, expected: str) -> None:
    assert error_message(body) == expected


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind"),
    [
        (400, {"message": "prompt is required"}, {}, PermanentApiError),
        (404, {"message": "no such job"}, {}, PermanentApiError),
        (422, {"message": "duration must be a string"}, {}, PermanentApiError),
        (418, None, {}, PermanentApiError),
        (401, {"message": "bad key"}, {}, AuthError),
        (403, {"message": "forbidden"}, {}, AuthError),
        (402, {"message": "pay"}, {}, CreditError),
        (400, {"message": "Not enough creative units"}, {}, CreditError),
        (403, {"message": "Insufficient credits for this team"}, {}, CreditError),
        (422, {"message": "monthly quota exceeded"}, {}, CreditError),
        (429, {"message": "quota of requests per second"}, {}, RateLimitedError),
        (408, None, {}, TransientApiError),
        (409, None, {}, TransientApiError),
        (500, "oops", {}, TransientApiError),
        (503, {"message": "credit service down"}, {}, TransientApiError),
    ],
)
def test_failure_for_status(
    status: int, body: Any, headers: dict[str, str], kind: type[ApiError]
) -> None:
    failure = failure_for_status(status, body, headers, method="GET", url="/v1/x", now=NOW)
    assert type(failure.error) is kind
    assert failure.error.status == status
    assert failure.sent
    assert "GET /v1/x: HTTP" in failure.error.message


def test_a_429_carries_the_server_delay() -> None:
    failure = failure_for_status(
        429, None, {"retry-after-ms": "250"}, method="POST", url="/v1/g", now=NOW
    )
    assert isinstance(failure.error, RateLimitedError)
    assert failure.error.retry_after == 0.25
    assert failure.retry_hint == 0.25


def _os_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, OSError(111, "refused"))


@pytest.mark.parametrize(
    ("exc", "sent", "words"),
    [
        (_os_error(), False, "could not connect"),
        (aiohttp.ConnectionTimeoutError("connect"), False, "could not connect"),
        (aiohttp.SocketTimeoutError("read"), True, "no answer in time"),
        (TimeoutError(), True, "no answer in time"),
        (aiohttp.ServerDisconnectedError(), True, "connection was lost"),
        (aiohttp.ClientOSError(104, "reset"), True, "connection was lost"),
        (aiohttp.ClientPayloadError("short"), True, "cut off"),
        (aiohttp.ClientError("odd"), True, "transport error"),
    ],
)
def test_failure_for_exception(exc: BaseException, sent: bool, words: str) -> None:
    failure = failure_for_exception(exc, method="POST", url="/v1/g")
    assert type(failure.error) is TransientApiError
    assert failure.sent is sent
    assert words in failure.error.message


def _status(status: int, headers: dict[str, str] | None = None) -> Failure:
    return failure_for_status(status, None, headers or {}, method="POST", url="/g", now=NOW)


UNSENT = failure_for_exception(aiohttp.ConnectionTimeoutError(), method="POST", url="/g")
RESET = failure_for_exception(aiohttp.ServerDisconnectedError(), method="POST", url="/g")


@pytest.mark.parametrize(
    ("failure", "ordinary", "generate", "generate_final"),
    [
        (_status(500), True, False, OutcomeUnknownError),
        (_status(503, {"x-should-retry": "true"}), True, False, OutcomeUnknownError),
        (_status(408), True, False, OutcomeUnknownError),
        (_status(409), True, False, OutcomeUnknownError),
        (RESET, True, False, OutcomeUnknownError),
        (_status(429), True, True, RateLimitedError),
        (_status(429, {"x-should-retry": "false"}), False, False, RateLimitedError),
        (UNSENT, True, True, TransientApiError),
        (_status(500, {"x-should-retry": "false"}), False, False, OutcomeUnknownError),
        (_status(400), False, False, PermanentApiError),
        (_status(422), False, False, PermanentApiError),
        (_status(401), False, False, AuthError),
        (_status(402), False, False, CreditError),
    ],
)
def test_retry_and_final_error_rules(
    failure: Failure, ordinary: bool, generate: bool, generate_final: type[ApiError]
) -> None:
    assert retry_allowed(failure, creates_job=False) is ordinary
    assert retry_allowed(failure, creates_job=True) is generate
    assert type(final_error(failure, creates_job=True)) is generate_final
    # Ordinary calls keep the error they got.
    assert final_error(failure, creates_job=False) is failure.error


def test_outcome_unknown_says_what_to_do() -> None:
    error = final_error(_status(502), creates_job=True)
    assert "reconcile" in error.message
    assert error.status == 502


@pytest.mark.parametrize(
    ("kwargs", "query", "types", "status"),
    [
        (
            {},
            {"pageSize": "100", "types": "custom"},
            None,
            None,
        ),
        (
            {"status": "in-progress", "types": ("custom", "workflow"), "page_size": 500},
            {"pageSize": "100", "types": "custom,workflow", "status": "in-progress"},
            None,
            None,
        ),
        (
            {"updated_after": "2025-01-01T00:00:00Z", "page_size": 0},
            {"pageSize": "1", "updatedAfter": "2025-01-01T00:00:00Z", "types": "custom"},
            None,
            None,
        ),
        # createdAfter is refused together with status/types: they move client-side.
        (
            {"created_after": "2025-01-01T00:00:00Z", "status": "queued"},
            {"pageSize": "100", "createdAfter": "2025-01-01T00:00:00Z"},
            frozenset({"custom"}),
            "queued",
        ),
        (
            {"created_after": "2025-01-01T00:00:00Z", "types": ()},
            {"pageSize": "100", "createdAfter": "2025-01-01T00:00:00Z"},
            None,
            None,
        ),
    ],
)
def test_jobs_query(
    kwargs: dict[str, Any],
    query: dict[str, str],
    types: frozenset[str] | None,
    status: str | None,
) -> None:
    args: dict[str, Any] = {
        "created_after": None,
        "updated_after": None,
        "status": None,
        "types": ("custom",),
        "page_size": 100,
    }
    assert jobs_query(**(args | kwargs)) == (query, types, status)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("model_kling-v2-1-pro", "model_kling-v2-1-pro"),
        ("a/b", "a%2Fb"),
        ("a b?c#d", "a%20b%3Fc%23d"),
        ("x:y@z", "x:y@z"),
        ("é", "%C3%A9"),
    ],
)
def test_path_segment(value: str, encoded: str) -> None:
    assert path_segment(value) == encoded


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_path_segment_refuses_dot_segments(value: str) -> None:
    with pytest.raises(ValueError, match="invalid path parameter"):
        path_segment(value)


def test_json_encoding_is_compact_utf8_and_decoding_tolerant() -> None:
    assert encode_json({"prompt": "café", "n": [1, 2]}) == '{"prompt":"café","n":[1,2]}'.encode()
    with pytest.raises(ValueError):
        encode_json({"x": float("nan")})
    assert decode_body(b"") is None
    assert decode_body(b'{"a":1}') == {"a": 1}
    assert decode_body(b"<html>") == "<html>"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_API_SECRET": "s"}, "Basic azpz"),
        ({"SCENARIO_SDK_JWT": "tok"}, "Bearer tok"),
        (
            {"SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_API_SECRET": "s", "SCENARIO_SDK_JWT": "t"},
            "Basic azpz",  # Basic wins, as in the SDK
        ),
        ({"SCENARIO_SDK_API_KEY": "k"}, None),  # half a pair is no credential
        ({"SCENARIO_SDK_API_KEY": "k", "SCENARIO_SDK_JWT": "t"}, "Bearer t"),
        ({"SCENARIO_SDK_JWT": "  "}, None),
    ],
)
def test_credentials_from_env(env: dict[str, str], expected: str | None) -> None:
    credentials = credentials_from_env(env)
    if expected is None:
        assert credentials is None
    else:
        assert credentials == Credentials(expected)


def test_credentials_never_show_the_secret() -> None:
    credentials = Credentials("Bearer super-secret-token")
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert "super-secret" not in text
        assert "Bearer" in text
