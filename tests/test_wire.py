"""The wire format: answers parsed into the runner's types (tolerant of extras, exact about
what is missing), request bodies encoded, and the query and path of each request built."""

from __future__ import annotations

from typing import Any

import pytest

from runner.api import (
    UploadPart,
    WireFormatError,
    decode_body,
    encode_json,
    error_message,
    jobs_query,
    parse_asset,
    parse_created_asset_id,
    parse_estimate,
    parse_job,
    parse_job_page,
    parse_submission,
    parse_upload_state,
    parse_upload_ticket,
    path_segment,
)
from runner.domain import RemoteStatus

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
