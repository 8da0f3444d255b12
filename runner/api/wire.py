"""Scenario JSON ↔ domain objects: pure functions, no I/O.

The API sends more fields than we read and may add new ones, so parsers pick what they need
and ignore the rest. A field we do need that is missing or of the wrong type raises
`WireFormatError` naming its JSON path; the client turns that into the right API error.
Shapes are those of docs/api.md §2, §3, §4.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from runner.domain import RemoteAsset, RemoteJob, RemoteStatus, Submission


class WireFormatError(ValueError):
    """A response body lacks a field we rely on, or has it with the wrong type."""


@dataclass(frozen=True, slots=True)
class UploadPart:
    """One presigned part URL of a multipart upload; `number` is 1-based as in S3."""

    number: int
    url: str
    expires: str | None = None


@dataclass(frozen=True, slots=True)
class UploadTicket:
    """A created multipart upload: where to PUT each part, in part-number order."""

    upload_id: str
    status: str
    parts: tuple[UploadPart, ...]


@dataclass(frozen=True, slots=True)
class UploadState:
    """Progress of an upload: `imported` gives `entity_id` (the asset id), `failed` an error."""

    upload_id: str
    status: str
    entity_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of `GET /v1/jobs`: the jobs kept after filtering, and the next cursor."""

    jobs: tuple[RemoteJob, ...]
    next_token: str | None


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WireFormatError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _string(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise WireFormatError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _opt_string(obj: Mapping[str, Any], key: str) -> str | None:
    value = obj.get(key)
    return value if isinstance(value, str) and value else None


def _opt_number(obj: Mapping[str, Any], key: str) -> float | None:
    value = obj.get(key)
    # bool is an int in Python, and never a number on this wire.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _opt_object(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def parse_job(value: Any, where: str = "job") -> RemoteJob:
    """A `Job` object (docs/api.md §3.2) → RemoteJob. Needs `jobId` and `status`, no more."""
    obj = _object(value, where)
    raw_status = _string(obj, "status", where)
    metadata = _opt_object(obj, "metadata")
    asset_ids = metadata.get("assetIds")
    input_ = metadata.get("input")
    return RemoteJob(
        job_id=_string(obj, "jobId", where),
        status=RemoteStatus.parse(raw_status),
        raw_status=raw_status,
        progress=_opt_number(obj, "progress") or 0.0,
        asset_ids=tuple(a for a in asset_ids if isinstance(a, str))
        if isinstance(asset_ids, list)
        else (),
        error=_opt_string(metadata, "error"),
        hint=_opt_string(metadata, "hint"),
        input=dict(input_) if isinstance(input_, Mapping) else None,
        model_id=_opt_string(obj, "modelId") or _opt_string(metadata, "modelId"),
        created_at=_opt_string(obj, "createdAt"),
        updated_at=_opt_string(obj, "updatedAt"),
        cu_cost=_opt_number(_opt_object(obj, "billing"), "cuCost"),
    )


def parse_job_envelope(value: Any) -> RemoteJob:
    """`{"job": Job}` (GET /jobs/{id}, job actions) → RemoteJob."""
    return parse_job(_object(value, "body").get("job"), "job")


def parse_submission(value: Any) -> Submission:
    """A generate answer (docs/api.md §2.2) → Submission; cost falls back to the job's billing."""
    body = _object(value, "body")
    job = parse_job(body.get("job"), "job")
    cost = _opt_number(body, "creativeUnitsCost")
    return Submission(job=job, cost=cost if cost is not None else job.cu_cost)


def parse_estimate(value: Any) -> float:
    """A dry-run answer (HTTP 269) → its `creativeUnitsCost`."""
    cost = _opt_number(_object(value, "body"), "creativeUnitsCost")
    if cost is None:
        raise WireFormatError("body.creativeUnitsCost: expected a number")
    return cost


def parse_job_page(value: Any, job_types: Collection[str] | None = None) -> JobPage:
    """A `GET /v1/jobs` page (docs/api.md §3.4) → JobPage; only `jobType` in `job_types` if given.

    Items are bare Job objects. An empty `jobs` with a token is a normal page, not the end.
    """
    body = _object(value, "body")
    items = body.get("jobs", [])
    if not isinstance(items, list):
        raise WireFormatError("body.jobs: expected an array")
    jobs = tuple(
        parse_job(item, f"jobs[{i}]")
        for i, item in enumerate(items)
        if job_types is None or _object(item, f"jobs[{i}]").get("jobType") in job_types
    )
    return JobPage(jobs=jobs, next_token=_opt_string(body, "nextPaginationToken"))


def parse_asset(value: Any) -> RemoteAsset:
    """`{"asset": Asset}` (docs/api.md §4.3) → RemoteAsset; `url` is signed and expires (§4.5)."""
    obj = _object(_object(value, "body").get("asset"), "asset")
    size = _opt_number(_opt_object(obj, "properties"), "size")
    return RemoteAsset(
        asset_id=_string(obj, "id", "asset"),
        status=_opt_string(obj, "status") or "success",
        url=_opt_string(obj, "url") or "",
        size=int(size) if size is not None else None,
        mime_type=_opt_string(obj, "mimeType"),
        kind=_opt_string(obj, "kind"),
    )


def parse_assets(value: Any) -> list[RemoteAsset]:
    """`POST /v1/assets/get-bulk` answer `{"assets": [Asset…]}` (docs/api.md §4.4) → assets."""
    items = _object(value, "body").get("assets")
    if not isinstance(items, list):
        raise WireFormatError("assets: expected a list")
    return [parse_asset({"asset": item}) for item in items]


def parse_parallel_job_cap(value: Any) -> int | None:
    """`GET /v1/teams/{id}/limits` (docs/api.md §6.1) → `limits.parallelCustomJobs`, the
    plan's cap on custom jobs (Kling's) in flight; None when the answer does not say."""
    cap = _opt_number(_opt_object(_object(value, "body"), "limits"), "parallelCustomJobs")
    return int(cap) if cap is not None and cap >= 1 else None


def parse_created_asset_id(value: Any) -> str:
    """`POST /v1/assets` answer `{"asset": {"id": …}}` → the new asset id."""
    return _string(_object(_object(value, "body").get("asset"), "asset"), "id", "asset")


def _upload(value: Any) -> Mapping[str, Any]:
    return _object(_object(value, "body").get("upload"), "upload")


def parse_upload_ticket(value: Any) -> UploadTicket:
    """`POST /v1/uploads` answer → UploadTicket with its part URLs sorted by number."""
    obj = _upload(value)
    raw_parts = obj.get("parts") or []
    if not isinstance(raw_parts, list):
        raise WireFormatError("upload.parts: expected an array")
    parts = []
    for i, raw in enumerate(raw_parts):
        part = _object(raw, f"upload.parts[{i}]")
        number = _opt_number(part, "number")
        if number is None:
            raise WireFormatError(f"upload.parts[{i}].number: expected a number")
        url = _string(part, "url", f"upload.parts[{i}]")
        parts.append(UploadPart(int(number), url, _opt_string(part, "expires")))
    return UploadTicket(
        upload_id=_string(obj, "id", "upload"),
        status=_opt_string(obj, "status") or "pending",
        parts=tuple(sorted(parts, key=lambda p: p.number)),
    )


def parse_upload_state(value: Any) -> UploadState:
    """`GET /v1/uploads/{id}` answer → UploadState (`entityId` is the created asset id)."""
    obj = _upload(value)
    return UploadState(
        upload_id=_string(obj, "id", "upload"),
        status=_string(obj, "status", "upload"),
        entity_id=_opt_string(obj, "entityId"),
        error=_opt_string(obj, "errorMessage"),
    )


def error_message(body: Any) -> str:
    """The human message of an error body: `message`, `error` or `detail`, else the text."""
    if isinstance(body, Mapping):
        for key in ("message", "error", "detail", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return str(value["message"])
    text = body if isinstance(body, str) else repr(body)
    return text.strip()[:500]
